package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// Credential gets access tokens per tenant and scope (*auth.Credential).
type Credential interface {
	Token(ctx context.Context, tenant, scope string) (string, error)
	Renew(ctx context.Context, tenant, scope, stale string) (string, error)
}

// Defaults of Config.
const (
	// DefaultTeamsRate is Graph's limit of installedApps and appCatalogs
	// requests per app per tenant per second; each $batch member counts
	// (graph-api.md §8.1).
	DefaultTeamsRate = 30
	// DefaultDirectoryRate paces /users and /organization requests per
	// tenant per second (each $batch member counts), well inside the
	// identity service's resource-unit budget (graph-api.md §8.2).
	DefaultDirectoryRate = 50
	// MaxBatch is the most requests a $batch may hold.
	MaxBatch = 20
	// MaxFilterIDs is the most ids an "id in (...)" filter may hold.
	MaxFilterIDs = 15
)

// DefaultURL is the Graph v1.0 root of cloud.
func DefaultURL(cloud blockreport.Cloud) string {
	switch cloud {
	case blockreport.CloudGCCH:
		return "https://graph.microsoft.us/v1.0"
	case blockreport.CloudDoD:
		return "https://dod-graph.microsoft.us/v1.0"
	}
	return "https://graph.microsoft.com/v1.0"
}

// CheckURL returns nil when raw may be the Graph root: an absolute https
// URL, or plain http to a loopback host, without user info, query or
// fragment. The Graph token goes there.
func CheckURL(raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		return errors.New("graph URL does not parse")
	case u.Host == "" || u.Opaque != "":
		return errors.New("graph URL is not an absolute URL")
	case u.User != nil:
		return errors.New("graph URL carries user info")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("graph URL has a query or fragment")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("graph URL host %q: plain http would send the Graph token in clear text; want https (http only for loopback hosts)", u.Hostname())
	}
	return fmt.Errorf("graph URL scheme %q: want https", u.Scheme)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Config configures a Client.
type Config struct {
	// URL is the Graph root, e.g. https://graph.microsoft.com/v1.0
	// (default: the cloud's). Its origin names the token's scope,
	// "{origin}/.default".
	URL        string
	Cloud      blockreport.Cloud
	Credential Credential
	// AppID is the Teams app's id in the app catalog, or its manifest id;
	// it is resolved to the catalog id once per tenant.
	AppID string

	TeamsRate     float64       // default DefaultTeamsRate
	DirectoryRate float64       // default DefaultDirectoryRate
	Attempts      int           // per request, default 5
	BackoffBase   time.Duration // default 500ms
	BackoffMax    time.Duration // default 30s
	MaxRetryAfter time.Duration // cap of one Retry-After pause, default 2m
	Timeout       time.Duration // per request, default 30s

	HTTPClient *http.Client // redirects are never followed
	Logger     *slog.Logger
	Now        func() time.Time
}

// Client calls Microsoft Graph for each customer tenant with that tenant's
// token, paced per tenant. It is safe for concurrent use.
type Client struct {
	cfg    Config
	base   *url.URL
	scope  string
	client *http.Client
	log    *slog.Logger

	mu      sync.Mutex
	tenants map[string]*tenant
}

// tenant is the per-tenant state: pacers, the Retry-After pause, the
// resolved catalog id and, once Graph failed for good, why.
type tenant struct {
	id        string
	teams     *window
	directory *window

	mu      sync.Mutex
	until   time.Time // no request before (Retry-After)
	down    *TenantError
	catalog string
	once    sync.Once
	cerr    error
}

// New checks cfg and returns a Client; it contacts nothing yet.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		cfg.URL = DefaultURL(cfg.Cloud)
	}
	if err := CheckURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Credential == nil {
		return nil, errors.New("graph: no credential")
	}
	if strings.TrimSpace(cfg.AppID) == "" {
		return nil, errors.New("graph: no Teams app id")
	}
	if cfg.TeamsRate <= 0 {
		cfg.TeamsRate = DefaultTeamsRate
	}
	if cfg.DirectoryRate <= 0 {
		cfg.DirectoryRate = DefaultDirectoryRate
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 500 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = 2 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	u, _ := url.Parse(strings.TrimSuffix(strings.TrimSpace(cfg.URL), "/"))
	base := cfg.HTTPClient
	if base == nil {
		base = &http.Client{}
	}
	hc := *base
	// The Graph token must reach the Graph host only.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		cfg: cfg, base: u, scope: u.Scheme + "://" + u.Host + "/.default",
		client: &hc, log: cfg.Logger, tenants: map[string]*tenant{},
	}, nil
}

// Scope is the scope of the Graph tokens this client asks for.
func (c *Client) Scope() string { return c.scope }

// URL is the Graph root.
func (c *Client) URL() string { return c.base.String() }

func (c *Client) tenant(id string) *tenant {
	k := strings.ToLower(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[k]
	if t == nil {
		t = &tenant{
			id:        id,
			teams:     newWindow(c.cfg.TeamsRate, c.cfg.Now),
			directory: newWindow(c.cfg.DirectoryRate, c.cfg.Now),
		}
		c.tenants[k] = t
	}
	return t
}

// ErrUnavailable is wrapped by every TenantError: Graph cannot be used
// for that tenant in this run (no service principal, no consent, or still
// failing after retries). The connector's verdicts stand there.
var ErrUnavailable = errors.New("microsoft graph unavailable for the tenant")

// TenantError says why Graph is unavailable for a tenant. Its text never
// holds a token.
type TenantError struct {
	Tenant string
	Status int    // HTTP status of the answer that decided it, 0 for a token error
	Code   string // Graph error code, or the AADSTS code of a token error
	Reason string // one line: what happened and what to do
}

func (e *TenantError) Error() string {
	return fmt.Sprintf("graph unavailable for tenant %s: %s", e.Tenant, e.Reason)
}

// Is makes a TenantError match ErrUnavailable.
func (e *TenantError) Is(target error) bool { return target == ErrUnavailable }

// Unavailable returns why Graph is unavailable for tenant, or nil.
func (c *Client) Unavailable(tenantID string) *TenantError {
	t := c.tenant(tenantID)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.down
}

func (t *tenant) fail(e *TenantError) *TenantError {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.down == nil {
		t.down = e
	}
	return t.down
}

// kind is which pacer a request goes through.
type kind int

const (
	teamsKind kind = iota
	directoryKind
)

// pace waits for the tenant's Retry-After pause and for n requests of the
// tenant's pacer of k.
func (c *Client) pace(ctx context.Context, t *tenant, k kind, n int) error {
	for {
		t.mu.Lock()
		wait := t.until.Sub(c.cfg.Now())
		t.mu.Unlock()
		if wait <= 0 {
			break
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	l := t.teams
	if k == directoryKind {
		l = t.directory
	}
	return l.wait(ctx, n)
}

// pause holds every request of the tenant for d (a Retry-After).
func (c *Client) pause(t *tenant, d time.Duration) {
	d = min(d, c.cfg.MaxRetryAfter)
	t.mu.Lock()
	defer t.mu.Unlock()
	if u := c.cfg.Now().Add(d); u.After(t.until) {
		t.until = u
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryAfter parses a Retry-After value (seconds, possibly fractional, or
// an HTTP date).
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		return time.Duration(f * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.BackoffBase << min(n, 10)
	d = min(d, c.cfg.BackoffMax)
	return d/2 + time.Duration(rand.Float64()*float64(d/2))
}

// answer is one Graph answer, direct or a $batch member.
type answer struct {
	Status int
	Header http.Header
	Body   json.RawMessage
}

// graphErr is Graph's error body.
type graphErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func errorCode(body []byte) (code, msg string) {
	var e graphErr
	if json.Unmarshal(body, &e) == nil {
		return e.Error.Code, oneLine(e.Error.Message, 160)
	}
	return "", ""
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "")), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

// resolve makes an absolute URL of a path ("/users?...") or a nextLink,
// which must stay on the Graph root's scheme and host.
func (c *Client) resolve(ref string) (*url.URL, error) {
	if strings.HasPrefix(ref, "/") {
		return url.Parse(c.base.String() + ref)
	}
	u, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("graph: next link does not parse")
	}
	if !strings.EqualFold(u.Scheme, c.base.Scheme) || !strings.EqualFold(u.Host, c.base.Host) {
		return nil, fmt.Errorf("graph: next link to %s://%s is not on the Graph host %s: not followed", u.Scheme, u.Host, c.base.Host)
	}
	return u, nil
}

// do sends one request for tenant with its token, paced as k counting n
// requests (a $batch counts its members), retrying 429 and 503 after
// Retry-After, 5xx and network errors with backoff, and a 401 once with a
// renewed token. It returns the final answer for 2xx and 4xx other than
// 401/403/429; a token failure, a 401 or 403, or a failure that outlasts
// the retries makes Graph unavailable for the tenant (TenantError).
func (c *Client) do(ctx context.Context, tenantID string, k kind, n int, method, ref string, body any) (answer, error) {
	t := c.tenant(tenantID)
	if e := c.Unavailable(tenantID); e != nil {
		return answer{}, e
	}
	u, err := c.resolve(ref)
	if err != nil {
		return answer{}, err
	}
	var payload []byte
	if body != nil {
		if payload, err = json.Marshal(body); err != nil {
			return answer{}, fmt.Errorf("graph: encode request: %w", err)
		}
	}
	tok, err := c.cfg.Credential.Token(ctx, tenantID, c.scope)
	if err != nil {
		if ctx.Err() != nil {
			return answer{}, ctx.Err()
		}
		return answer{}, t.fail(tokenError(tenantID, err))
	}
	renewed := false
	var last string
	for attempt := 0; ; attempt++ {
		if err := c.pace(ctx, t, k, n); err != nil {
			return answer{}, err
		}
		a, err := c.send(ctx, method, u, payload, tok)
		if err != nil {
			if ctx.Err() != nil {
				return answer{}, ctx.Err()
			}
			last = "network error: " + oneLine(err.Error(), 160)
			if attempt+1 >= c.cfg.Attempts {
				break
			}
			if err := sleep(ctx, c.backoff(attempt)); err != nil {
				return answer{}, err
			}
			continue
		}
		switch {
		case a.Status == http.StatusUnauthorized && !renewed:
			renewed = true
			if tok, err = c.cfg.Credential.Renew(ctx, tenantID, c.scope, tok); err != nil {
				return answer{}, t.fail(tokenError(tenantID, err))
			}
			attempt--
			continue
		case a.Status == http.StatusUnauthorized, a.Status == http.StatusForbidden:
			code, msg := errorCode(a.Body)
			return answer{}, t.fail(&TenantError{Tenant: tenantID, Status: a.Status, Code: code, Reason: deniedReason(a.Status, code, msg)})
		case a.Status == http.StatusTooManyRequests || a.Status == http.StatusServiceUnavailable || a.Status >= 500:
			last = fmt.Sprintf("HTTP %d", a.Status)
			if code, _ := errorCode(a.Body); code != "" {
				last += " " + code
			}
			if attempt+1 >= c.cfg.Attempts {
				break
			}
			d, ok := retryAfter(a.Header.Get("Retry-After"), c.cfg.Now())
			if ok && (a.Status == http.StatusTooManyRequests || a.Status == http.StatusServiceUnavailable) {
				c.pause(t, d)
				c.log.Debug("graph throttled", "tenant", tenantID, "status", a.Status, "retry_after", d)
			} else if err := sleep(ctx, c.backoff(attempt)); err != nil {
				return answer{}, err
			}
			continue
		}
		return a, nil
	}
	return answer{}, t.fail(&TenantError{Tenant: tenantID, Reason: fmt.Sprintf("still failing after %d attempts (%s)", c.cfg.Attempts, last)})
}

func deniedReason(status int, code, msg string) string {
	switch {
	case code == "Authorization_RequestDenied":
		return "403 Authorization_RequestDenied: the app is not consented in this tenant (an admin grants User.Read.All and TeamsAppInstallation.ReadForUser.All)"
	case status == http.StatusForbidden:
		r := "403"
		if code != "" {
			r += " " + code
		}
		if msg != "" {
			r += ": " + msg
		}
		return r + " (admin consent for the app's Graph permissions is missing in this tenant)"
	}
	return fmt.Sprintf("HTTP %d %s after a renewed token", status, code)
}

// tokenError turns a token failure into a TenantError, keeping the AADSTS
// code (AADSTS700016: no service principal in the tenant).
func tokenError(tenantID string, err error) *TenantError {
	msg := oneLine(err.Error(), 240)
	e := &TenantError{Tenant: tenantID, Reason: "no Graph token: " + msg}
	if i := strings.Index(msg, "AADSTS"); i >= 0 {
		j := i + 6
		for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
			j++
		}
		e.Code = msg[i:j]
	}
	if e.Code == "AADSTS700016" {
		e.Reason = "no Graph token: AADSTS700016, the app has no service principal in this tenant (an admin of the tenant must consent to the app)"
	}
	return e
}

func (c *Client) send(ctx context.Context, method string, u *url.URL, payload []byte, tok string) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return answer{}, err
	}
	if !strings.EqualFold(req.URL.Host, c.base.Host) {
		return answer{}, fmt.Errorf("graph: refusing to send the token to %s", req.URL.Host)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "blockreport")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return answer{}, redactURL(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return answer{}, err
	}
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// redactURL drops the query of a *url.Error (ids of users).
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			ue.URL = u.String()
		}
	}
	return err
}

// batchReq is one member of a $batch.
type batchReq struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Body    any               `json:"body,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// batch sends reqs (at most MaxBatch) as one $batch and returns the
// members' answers by id. Members answered 429 or 5xx are sent again
// (after the longest Retry-After among them, per tenant) until they get
// another answer or the attempts run out.
func (c *Client) batch(ctx context.Context, tenantID string, k kind, reqs []batchReq) (map[string]answer, error) {
	out := make(map[string]answer, len(reqs))
	pending := reqs
	t := c.tenant(tenantID)
	for attempt := 0; len(pending) > 0; attempt++ {
		a, err := c.do(ctx, tenantID, k, len(pending), http.MethodPost, "/$batch", map[string]any{"requests": pending})
		if err != nil {
			return nil, err
		}
		if a.Status != http.StatusOK {
			code, msg := errorCode(a.Body)
			return nil, fmt.Errorf("graph: $batch for tenant %s: HTTP %d %s %s", tenantID, a.Status, code, msg)
		}
		var resp struct {
			Responses []struct {
				ID      string            `json:"id"`
				Status  int               `json:"status"`
				Headers map[string]string `json:"headers"`
				Body    json.RawMessage   `json:"body"`
			} `json:"responses"`
		}
		if err := json.Unmarshal(a.Body, &resp); err != nil {
			return nil, fmt.Errorf("graph: $batch answer for tenant %s does not parse: %w", tenantID, err)
		}
		byID := make(map[string]batchReq, len(pending))
		for _, r := range pending {
			byID[r.ID] = r
		}
		var again []batchReq
		var wait time.Duration
		for _, r := range resp.Responses {
			req, ok := byID[r.ID]
			if !ok {
				continue
			}
			delete(byID, r.ID)
			h := http.Header{}
			for k, v := range r.Headers {
				h.Set(k, v)
			}
			if r.Status == http.StatusTooManyRequests || r.Status >= 500 {
				if attempt+1 < c.cfg.Attempts {
					if d, ok := retryAfter(h.Get("Retry-After"), c.cfg.Now()); ok {
						wait = max(wait, d)
					} else {
						wait = max(wait, c.backoff(attempt))
					}
					again = append(again, req)
					continue
				}
			}
			out[r.ID] = answer{Status: r.Status, Header: h, Body: r.Body}
		}
		for _, r := range byID { // no answer at all: ask again
			if attempt+1 < c.cfg.Attempts {
				again = append(again, r)
			}
		}
		if len(again) > 0 && wait > 0 {
			c.pause(t, wait)
		}
		pending = again
	}
	return out, nil
}

// memberError is the error of a batch member that must make Graph
// unavailable for the tenant (401, 403), or nil.
func (c *Client) memberError(tenantID string, a answer) *TenantError {
	if a.Status != http.StatusForbidden && a.Status != http.StatusUnauthorized {
		return nil
	}
	code, msg := errorCode(a.Body)
	return c.tenant(tenantID).fail(&TenantError{Tenant: tenantID, Status: a.Status, Code: code, Reason: deniedReason(a.Status, code, msg)})
}
