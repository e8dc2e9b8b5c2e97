package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
)

const testSecret = "s3cr3t-Recognisable-~Secret.Value"

// memStore is an in-memory Store and SendLog with the store's semantics:
// pending means no result yet; SaveResults keeps the first result of a
// reference; a send is claimed once.
type memStore struct {
	mu       sync.Mutex
	refs     []blockreport.Reference // ordered by ID
	results  map[int64]blockreport.Result
	claims   map[int64]bool
	dupes    int
	saveErr  error
	claimErr error
	saves    int
}

func newMemStore(refs []blockreport.Reference) *memStore {
	for i := range refs {
		if refs[i].ID == 0 {
			refs[i].ID = int64(i + 1)
		}
	}
	return &memStore{refs: refs, results: map[int64]blockreport.Result{}, claims: map[int64]bool{}}
}

func (m *memStore) ClaimSends(_ context.Context, _ int64, ids []int64, _ time.Time) ([]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.claimErr != nil {
		return nil, m.claimErr
	}
	var out []int64
	for _, id := range ids {
		if !m.claims[id] {
			m.claims[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

func (m *memStore) ReleaseSends(_ context.Context, _ int64, ids []int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if _, ok := m.results[id]; !ok {
			delete(m.claims, id)
		}
	}
	return nil
}

// unanswered returns the claimed references without a result.
func (m *memStore) unanswered() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int64
	for id := range m.claims {
		if _, ok := m.results[id]; !ok {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (m *memStore) PendingTenants(ctx context.Context, runID int64) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, r := range m.refs {
		if _, ok := m.results[r.ID]; !ok && !seen[r.TenantID] {
			seen[r.TenantID] = true
			out = append(out, r.TenantID)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (m *memStore) Pending(ctx context.Context, runID int64, tenant string, fn func(blockreport.Reference) error) error {
	for i := 0; ; i++ {
		m.mu.Lock()
		if i >= len(m.refs) {
			m.mu.Unlock()
			return nil
		}
		r := m.refs[i]
		_, done := m.results[r.ID]
		m.mu.Unlock()
		if r.TenantID != tenant || done {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

func (m *memStore) SaveResults(ctx context.Context, results []blockreport.Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.saveErr != nil {
		return m.saveErr
	}
	m.saves++
	for _, r := range results {
		if _, ok := m.results[r.ReferenceID]; ok {
			m.dupes++
			continue
		}
		m.results[r.ReferenceID] = r
	}
	return nil
}

func (m *memStore) result(t *testing.T, id int64) blockreport.Result {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.results[id]
	if !ok {
		t.Fatalf("reference %d has no result", id)
	}
	return r
}

func (m *memStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.results)
}

// tokenServer serves client-credentials tokens for testSecret.
func tokenServer(t *testing.T) (*httptest.Server, *int) {
	t.Helper()
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if r.PostForm.Get("client_secret") != testSecret || r.PostForm.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\nTrace ID: 1"}`)
			return
		}
		io.WriteString(w, `{"token_type":"Bearer","expires_in":3600,"access_token":"tok-abc"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// recorded is one request a fake connector saw.
type recorded struct {
	Method, Path, RawPath, Query, Auth string
	Body                               map[string]any
	At                                 time.Time
}

// connector is a fake Bot Connector whose answer is decided by fn.
type connector struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newConnector(t *testing.T, fn func(r recorded, n int) (int, string, http.Header)) *connector {
	t.Helper()
	c := &connector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recorded{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), At: time.Now()}
		b, _ := io.ReadAll(r.Body)
		if len(b) > 0 {
			_ = json.Unmarshal(b, &rec.Body)
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, rec)
		n := len(c.reqs)
		c.mu.Unlock()
		status, body, h := fn(rec, n)
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *connector) requests() []recorded {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]recorded(nil), c.reqs...)
}

// forbidden is a listener that fails the test if anything reaches it.
func forbidden(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("forbidden listener got %s %s (Authorization %q)", r.Method, r.URL, r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func host(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname()
}

// testConfig is a Config for tests: tiny backoffs, loopback allowed.
func testConfig(t *testing.T, tokenURL string, logs *bytes.Buffer) Config {
	t.Helper()
	c := Config{
		AppID:       "app-1",
		AllowHosts:  []string{"127.0.0.1"},
		Concurrency: 4, Rate: 1000, Timeout: 5 * time.Second, Attempts: 4, Grace: 5 * time.Second,
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		FlushEvery: 10 * time.Millisecond, StoreWait: 50 * time.Millisecond,
		Rand: func() float64 { return 0.5 },
	}
	if logs != nil {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c.Credential = testCredential(t, tokenURL, testSecret, c.Logger)
	return c
}

// testCredential is the app secret credential of app-1 against the
// token endpoint tokenURL.
func testCredential(t *testing.T, tokenURL, secret string, log *slog.Logger) *auth.Credential {
	t.Helper()
	cred, err := auth.New(auth.Config{AppID: "app-1", Secret: secret, TokenURL: tokenURL, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func mustNew(t *testing.T, cfg Config) *Prober {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func personal(id int64, tenant, serviceURL string) blockreport.Reference {
	return blockreport.Reference{
		ID: id, TenantID: tenant, UserID: "29:user-" + strings.Repeat("x", int(id%3)), ConversationID: "a:conv;" + string(rune('a'+id%26)),
		ConversationType: blockreport.ConversationPersonal, ServiceURL: serviceURL, BotID: "28:app-1",
	}
}

var errBoom = errors.New("boom")
