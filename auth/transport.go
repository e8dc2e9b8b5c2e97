package auth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Every request of a token fetch goes through tracer. It refuses hosts
// other than the fetch's token or identity endpoint (the credential goes
// nowhere else), and records what the endpoint answered, because
// azidentity's errors keep the HTTP response but not the network error.

// trace is what the transport saw during one token fetch.
type trace struct {
	allow func(*url.URL) bool

	mu      sync.Mutex
	url     string // last request, scheme://host/path (no query)
	status  int
	body    []byte // of an error answer
	netErr  error
	refused string // a host that was refused
}

type traceKey struct{}

func withTrace(ctx context.Context, tr *trace) context.Context {
	return context.WithValue(ctx, traceKey{}, tr)
}

func (t *trace) lastURL() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.url
}

func (t *trace) result() (status int, body []byte, netErr error, refused string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status, t.body, t.netErr, t.refused
}

var errNoTrace = errors.New("request outside a token fetch refused")

// tracer is the RoundTripper of the credential's HTTP client.
type tracer struct {
	base http.RoundTripper
}

func (tp tracer) RoundTrip(req *http.Request) (*http.Response, error) {
	tr, _ := req.Context().Value(traceKey{}).(*trace)
	if tr == nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errNoTrace
	}
	u := *req.URL
	u.RawQuery, u.ForceQuery, u.Fragment, u.User = "", false, "", nil
	if !tr.allow(req.URL) {
		if req.Body != nil {
			req.Body.Close()
		}
		tr.mu.Lock()
		tr.refused = strings.ToLower(req.URL.Host)
		tr.mu.Unlock()
		return nil, errors.New("refused host " + req.URL.Host)
	}
	resp, err := tp.base.RoundTrip(req)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.url = u.String()
	tr.status, tr.body, tr.netErr = 0, nil, nil
	if err != nil {
		tr.netErr = err
		return nil, err
	}
	tr.status = resp.StatusCode
	if resp.StatusCode >= 300 {
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if rerr != nil {
			tr.netErr = rerr
			return nil, rerr
		}
		tr.body = b
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	return resp, nil
}

// sameHost returns an allow function for exactly the hosts (host[:port])
// of urls.
func sameHost(urls ...string) func(*url.URL) bool {
	hosts := map[string]bool{}
	for _, raw := range urls {
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			hosts[strings.ToLower(u.Host)] = true
		}
	}
	return func(u *url.URL) bool { return hosts[strings.ToLower(u.Host)] }
}
