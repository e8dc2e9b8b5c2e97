package azstorage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
)

// Blobs reads the blobs of a storage account's containers.
type Blobs struct {
	acct   *Account
	client *azblob.Client
	// Workers is how many blobs download at once (default 16).
	Workers int
}

// Blob is one blob: its name as stored (see ingest.BlobKey for the key it
// encodes) and its body.
type Blob struct {
	Name         string
	LastModified time.Time
	Body         []byte
}

// pageSize is the most names one listing answer holds.
const pageSize = 5000

// NewBlobs returns a client of a's Blob service; nil httpClient means the
// SDK's default transport.
func NewBlobs(a *Account, httpClient *http.Client) (*Blobs, error) {
	opts := &azblob.ClientOptions{}
	opts.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	if httpClient != nil {
		opts.Transport = httpClient
	}
	endpoint := a.BlobEndpoint + "/"
	var c *azblob.Client
	var err error
	if a.key != nil {
		var cred *azblob.SharedKeyCredential
		cred, err = azblob.NewSharedKeyCredential(a.Name, encodeKey(a.key))
		if err == nil {
			c, err = azblob.NewClientWithSharedKeyCredential(endpoint, cred, opts)
		}
	} else {
		c, err = azblob.NewClient(endpoint, tokenCredential{a.tokens, a.tenant}, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("storage account %s: blob client: %w", a.Name, err)
	}
	return &Blobs{acct: a, client: c, Workers: 16}, nil
}

// Client is the underlying SDK client (tests and benchmarks upload with
// it).
func (b *Blobs) Client() *azblob.Client { return b.client }

// tokenCredential adapts a TokenSource to azcore. The source caches and
// renews its tokens itself, so each token is given a short life here.
type tokenCredential struct {
	src    TokenSource
	tenant string
}

func (t tokenCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := t.src.Token(ctx, t.tenant, StorageScope)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(5 * time.Minute)}, nil
}

// Prefixes returns the listing prefixes whose names can decode to a key
// starting with prefix: the key as it is, the .NET encoding
// (HttpUtility.UrlEncode, lower-case hex), encodeURIComponent (upper-case
// hex) and the Agents JS form with its leading "%2F".
func Prefixes(prefix string) []string {
	if prefix == "" {
		return []string{""}
	}
	upper := url.QueryEscape(prefix) // upper-case hex, "+" for space
	upper = strings.ReplaceAll(upper, "+", "%20")
	lower := lowerHex(url.QueryEscape(prefix))
	out := []string{prefix}
	for _, p := range []string{lower, upper, "%2F" + upper} {
		if !contains2(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func contains2(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// lowerHex lower-cases the hex digits of percent escapes.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			for j := i + 1; j <= i+2; j++ {
				if b[j] >= 'A' && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
		}
	}
	return string(b)
}

// List yields every blob of container whose name starts with one of the
// prefixes, with its body, page by page: the names of one listing page
// (up to 5,000) download Workers at a time and come out in listing order.
// It holds one page of bodies at a time.
func (b *Blobs) List(ctx context.Context, containerName string, prefixes ...string) iter.Seq2[Blob, error] {
	return func(yield func(Blob, error) bool) {
		if len(prefixes) == 0 {
			prefixes = []string{""}
		}
		seen := map[string]bool{} // prefixes can overlap ("" and anything)
		for _, prefix := range prefixes {
			var opts azblob.ListBlobsFlatOptions
			opts.MaxResults = ptr(int32(pageSize))
			if prefix != "" {
				opts.Prefix = ptr(prefix)
			}
			pager := b.client.NewListBlobsFlatPager(containerName, &opts)
			for pager.More() {
				page, err := pager.NextPage(ctx)
				if err != nil {
					yield(Blob{}, b.wrap("list blobs in container "+containerName, err))
					return
				}
				var names []Blob
				for _, item := range page.Segment.BlobItems {
					if item.Name == nil || seen[*item.Name] {
						continue
					}
					if len(prefixes) > 1 {
						seen[*item.Name] = true
					}
					bl := Blob{Name: *item.Name}
					if item.Properties != nil && item.Properties.LastModified != nil {
						bl.LastModified = *item.Properties.LastModified
					}
					names = append(names, bl)
				}
				if err := b.download(ctx, containerName, names); err != nil {
					yield(Blob{}, err)
					return
				}
				for _, bl := range names {
					if !yield(bl, nil) {
						return
					}
				}
			}
		}
	}
}

// download fills the bodies of blobs, Workers at a time.
func (b *Blobs) download(ctx context.Context, containerName string, blobs []Blob) error {
	workers := max(b.Workers, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range min(workers, len(blobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body, err := b.get(ctx, containerName, blobs[i].Name)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				blobs[i].Body = body
			}
		}()
	}
loop:
	for i := range blobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break loop
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return context.Cause(ctx)
}

func (b *Blobs) get(ctx context.Context, containerName, name string) ([]byte, error) {
	resp, err := b.client.DownloadStream(ctx, containerName, name, nil)
	if err != nil {
		return nil, b.wrap(fmt.Sprintf("download blob %q", name), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, b.wrap(fmt.Sprintf("download blob %q", name), err)
	}
	return body, nil
}

// wrap turns an SDK error into an Error naming the account and, for a
// refusal, the missing role.
func (b *Blobs) wrap(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return &Error{Account: b.acct.Name, Op: op, Status: re.StatusCode, Code: re.ErrorCode,
			Hint: b.acct.hint("blob", re.StatusCode, re.ErrorCode)}
	}
	return &Error{Account: b.acct.Name, Op: op, Err: scrub(err, b.acct.BlobEndpoint)}
}

// CreateContainer creates a container; one that exists is fine (tests,
// benchmarks).
func (b *Blobs) CreateContainer(ctx context.Context, name string) error {
	_, err := b.client.CreateContainer(ctx, name, nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.ErrorCode == "ContainerAlreadyExists" {
		return nil
	}
	if err != nil {
		return b.wrap("create container "+name, err)
	}
	return nil
}

// Upload writes one blob (tests, benchmarks).
func (b *Blobs) Upload(ctx context.Context, containerName, name string, body []byte) error {
	ct := "application/json"
	_, err := b.client.UploadBuffer(ctx, containerName, name, body, &azblob.UploadBufferOptions{HTTPHeaders: &blobHTTPHeaders{BlobContentType: &ct}})
	if err != nil {
		return b.wrap(fmt.Sprintf("upload blob %q", name), err)
	}
	return nil
}

type blobHTTPHeaders = blob.HTTPHeaders

func ptr[T any](v T) *T { return &v }
