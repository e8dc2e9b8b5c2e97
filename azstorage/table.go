package azstorage

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Table REST constants (learn.microsoft.com/rest/api/storageservices,
// "Query Entities", "Query Timeout and Pagination", "Authorize with Shared
// Key": the Shared Key Lite Table format).
const (
	tableVersion   = "2019-02-02" // the first version that takes OAuth tokens
	nextPartition  = "x-ms-continuation-NextPartitionKey"
	nextRow        = "x-ms-continuation-NextRowKey"
	maxErrorBody   = 64 << 10
	tableRetries   = 3
	tableRetryBase = 200 * time.Millisecond
)

// Tables is a small Table service client: query with paging, and (for
// tests and benchmarks) create a table and insert entities.
type Tables struct {
	acct   *Account
	client *http.Client
	now    func() time.Time
}

// NewTables returns a client of a's Table service; nil client means
// http.DefaultClient.
func NewTables(a *Account, client *http.Client) *Tables {
	if client == nil {
		client = http.DefaultClient
	}
	return &Tables{acct: a, client: client, now: time.Now}
}

// Entity is one table entity: its keys and its JSON (every column, with
// PartitionKey, RowKey and Timestamp).
type Entity struct {
	PartitionKey, RowKey string
	Raw                  json.RawMessage
}

// Key is "PartitionKey/RowKey", how problems name an entity.
func (e Entity) Key() string { return e.PartitionKey + "/" + e.RowKey }

// Query yields every entity of table matching filter (an OData $filter;
// "" for all), page after page: the service returns at most 1,000 per
// answer and the continuation headers say where the next starts. While the
// consumer works through one page the next is fetched, so it holds at most
// two pages.
func (t *Tables) Query(ctx context.Context, table, filter string) iter.Seq2[Entity, error] {
	return func(yield func(Entity, error) bool) {
		if err := checkTableName(table); err != nil {
			yield(Entity{}, err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // stops a prefetch when the consumer stops early
		op := "query table " + table
		pages := make(chan tablePage, 1)
		fetch := func(np, nr string) {
			pages <- t.fetchPage(ctx, op, table, filter, np, nr)
		}
		go fetch("", "")
		for {
			p := <-pages
			if p.err != nil {
				if ctx.Err() == nil || !errors.Is(p.err, context.Canceled) {
					yield(Entity{}, p.err)
				}
				return
			}
			more := p.np != "" || p.nr != ""
			if more {
				go fetch(p.np, p.nr)
			}
			for _, e := range p.entities {
				if !yield(e, nil) {
					return
				}
			}
			if !more {
				return
			}
		}
	}
}

// tablePage is one answer of a query: its entities and where the next
// page starts ("" and "" after the last).
type tablePage struct {
	entities []Entity
	np, nr   string
	err      error
}

func (t *Tables) fetchPage(ctx context.Context, op, table, filter, np, nr string) tablePage {
	q := url.Values{}
	if filter != "" {
		q.Set("$filter", filter)
	}
	if np != "" {
		q.Set("NextPartitionKey", np)
	}
	if nr != "" {
		q.Set("NextRowKey", nr)
	}
	resp, err := t.do(ctx, op, http.MethodGet, table+"()", q, nil)
	if err != nil {
		return tablePage{err: err}
	}
	defer resp.Body.Close()
	var p tablePage
	_, err = t.page(resp.Body, func(e Entity, _ error) bool {
		p.entities = append(p.entities, e)
		return true
	})
	if err != nil {
		return tablePage{err: &Error{Account: t.acct.Name, Op: op, Status: resp.StatusCode, Err: err, Hint: "unreadable answer: " + err.Error()}}
	}
	p.np, p.nr = resp.Header.Get(nextPartition), resp.Header.Get(nextRow)
	return p
}

// page streams the entities of one answer {"value":[...]}; stop is true
// when the consumer stopped.
func (t *Tables) page(body io.Reader, yield func(Entity, error) bool) (stop bool, err error) {
	dec := json.NewDecoder(body)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false, fmt.Errorf("want a JSON object (%v)", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false, err
		}
		if k, _ := tok.(string); k != "value" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return false, err
			}
			continue
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return false, fmt.Errorf("value is not an array (%v)", err)
		}
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return false, err
			}
			var keys struct{ PartitionKey, RowKey string }
			if err := json.Unmarshal(raw, &keys); err != nil {
				return false, err
			}
			if !yield(Entity{PartitionKey: keys.PartitionKey, RowKey: keys.RowKey, Raw: raw}, nil) {
				return true, nil
			}
		}
		if _, err := dec.Token(); err != nil {
			return false, err
		}
	}
	return false, nil
}

// CreateTable creates table; one that exists already is fine.
func (t *Tables) CreateTable(ctx context.Context, table string) error {
	if err := checkTableName(table); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"TableName": table})
	resp, err := t.do(ctx, "create table "+table, http.MethodPost, "Tables", nil, body, http.StatusConflict)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Insert inserts or replaces one entity (which must have PartitionKey and
// RowKey) in table.
func (t *Tables) Insert(ctx context.Context, table string, entity map[string]any) error {
	pk, _ := entity["PartitionKey"].(string)
	rk, _ := entity["RowKey"].(string)
	if err := checkTableName(table); err != nil {
		return err
	}
	body, err := json.Marshal(entity)
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	resource := table + "(PartitionKey='" + odataKey(pk) + "',RowKey='" + odataKey(rk) + "')"
	resp, err := t.do(ctx, "insert into table "+table, http.MethodPut, resource, nil, body)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// odataKey quotes a key inside '...' of a resource path: ' doubles, and
// what a path cannot hold is percent-encoded.
func odataKey(k string) string {
	return strings.ReplaceAll(url.PathEscape(strings.ReplaceAll(k, "'", "''")), "%27", "'")
}

// checkTableName applies the service's rule: 3-63 letters and digits,
// starting with a letter.
func checkTableName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("table name %q: want 3 to 63 letters and digits", name)
	}
	for i, c := range name {
		isLetter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !isLetter && (i == 0 || c < '0' || c > '9') {
			return fmt.Errorf("table name %q: want letters and digits, starting with a letter", name)
		}
	}
	return nil
}

// do sends one signed request to resource (a path below the endpoint,
// e.g. "UserData()"), retrying network errors, 500 and 503. Statuses in ok
// besides 2xx count as success.
func (t *Tables) do(ctx context.Context, op, method, resource string, q url.Values, body []byte, ok ...int) (*http.Response, error) {
	base, err := url.Parse(t.acct.TableEndpoint)
	if err != nil {
		return nil, &Error{Account: t.acct.Name, Op: op, Err: err}
	}
	var lastErr error
	for attempt := 0; attempt < tableRetries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(tableRetryBase << (attempt - 1)):
			}
		}
		req, err := t.request(ctx, base, method, resource, q, body)
		if err != nil {
			return nil, &Error{Account: t.acct.Name, Op: op, Err: err}
		}
		resp, err := t.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = &Error{Account: t.acct.Name, Op: op, Err: scrub(err, t.acct.TableEndpoint)}
			continue
		}
		if resp.StatusCode/100 == 2 || contains(ok, resp.StatusCode) {
			return resp, nil
		}
		e := t.failure(op, resp)
		resp.Body.Close()
		if resp.StatusCode == 500 || resp.StatusCode == 503 {
			lastErr = e
			continue
		}
		return nil, e
	}
	return nil, lastErr
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// scrub keeps the host of a network error but not a query string.
func scrub(err error, endpoint string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, endpoint, ue.Err)
	}
	return err
}

// request builds one request and signs it.
func (t *Tables) request(ctx context.Context, base *url.URL, method, resource string, q url.Values, body []byte) (*http.Request, error) {
	u := *base
	rawPath := strings.TrimSuffix(base.EscapedPath(), "/") + "/" + resource
	p, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, err
	}
	u.Path, u.RawPath = p, rawPath
	// Spaces as %20: Encode writes "+", and a literal "+" comes out as %2B.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	date := t.now().UTC().Format(http.TimeFormat)
	req.Header.Set("x-ms-date", date)
	req.Header.Set("x-ms-version", tableVersion)
	req.Header.Set("Accept", "application/json;odata=nometadata")
	req.Header.Set("DataServiceVersion", "3.0;NetFx")
	req.Header.Set("MaxDataServiceVersion", "3.0;NetFx")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if t.acct.key != nil {
		req.Header.Set("Authorization", "SharedKeyLite "+t.acct.Name+":"+sharedKeyLite(t.acct.key, date, t.acct.Name, req.URL.EscapedPath()))
		return req, nil
	}
	if t.acct.tokens == nil {
		return nil, errors.New("no credential")
	}
	tok, err := t.acct.tokens.Token(ctx, t.acct.tenant, StorageScope)
	if err != nil {
		return nil, fmt.Errorf("storage token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return req, nil
}

// sharedKeyLite signs a Table request: HMAC-SHA256 over
// "x-ms-date\n/account/escaped-path" (no query parameter but comp, which
// Query Entities never has). An emulator's path-style URL already starts
// with /account, so its resource names the account twice.
func sharedKeyLite(key []byte, date, account, escapedPath string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(date + "\n/" + account + escapedPath))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// failure turns an error answer into an Error naming the account, the
// service's code and, for a refusal, the missing role.
func (t *Tables) failure(op string, resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	code := resp.Header.Get("x-ms-error-code")
	if code == "" {
		var e struct {
			ODataError struct {
				Code string `json:"code"`
			} `json:"odata.error"`
		}
		if json.Unmarshal(b, &e) == nil {
			code = e.ODataError.Code
		}
	}
	return &Error{Account: t.acct.Name, Op: op, Status: resp.StatusCode, Code: code, Hint: t.acct.hint("table", resp.StatusCode, code)}
}
