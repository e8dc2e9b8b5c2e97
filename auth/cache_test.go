package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/internal/tokentest"
)

// clock is a wall clock moved forward by skew.
type clock struct{ skew atomic.Int64 }

func (c *clock) now() time.Time       { return time.Now().Add(time.Duration(c.skew.Load())) }
func (c *clock) move(d time.Duration) { c.skew.Store(int64(d)) }
func tokenURLConfig(u string) Config {
	return Config{Kind: Secret, AppID: "app-1", Secret: testSecret, TokenURL: u}
}
func (c *clock) set(cfg *Config) Config { cfg.Now = c.now; return *cfg }

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestRenewalInBackground: inside the refresh window the cached token is
// returned at once while the renewal runs; the next calls get the new one.
func TestRenewalInBackground(t *testing.T) {
	tok := tokentest.New(t, testSecret)
	var clk clock
	cfg := tokenURLConfig(tok.URL + "/t/oauth2/v2.0/token")
	c := mustNew(t, clk.set(&cfg))
	ctx := context.Background()
	if got, err := c.Token(ctx, "", connector); err != nil || got != "tok-1" {
		t.Fatalf("Token = %q, %v", got, err)
	}
	release := tok.Hold()
	clk.move(2 * time.Second) // inside the window, still valid
	done := make(chan string)
	go func() {
		for range 50 { // none of these may wait for the held renewal
			if got, _ := c.Token(ctx, "", connector); got != "tok-1" {
				done <- got
				return
			}
		}
		done <- "tok-1"
	}()
	select {
	case got := <-done:
		if got != "tok-1" {
			t.Fatalf("got %q while renewing, want the cached tok-1", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Token blocked while the cached token was valid")
	}
	release()
	eventually(t, "the renewed token", func() bool { got, _ := c.Token(ctx, "", connector); return got == "tok-2" })
	if issued, _ := tok.Counts(); issued != 2 {
		t.Errorf("%d tokens fetched, want 2 (one renewal for all callers)", issued)
	}
}

// TestRenewalFailures: a failing token endpoint at renewal does not fail
// callers while the token is valid; once it expired they get an
// ErrUnavailable error naming what failed, and the endpoint is asked a
// bounded number of times.
func TestRenewalFailures(t *testing.T) {
	for _, tt := range []struct {
		name    string
		fail    int           // 503s at renewal; -1: forever
		skew    time.Duration // clock moved forward after the first token
		want    string        // token the callers end with ("": an error)
		maxAsks int
	}{
		{"503 once at renewal", 1, 2 * time.Second, "tok-2", 2},
		{"503 forever, token still valid", -1, 2 * time.Second, "tok-1", tokenAttempts},
		{"503 forever after expiry", -1, refreshEarly + 2*time.Second, "", tokenAttempts},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := tokentest.New(t, testSecret)
			var clk clock
			cfg := tokenURLConfig(tok.URL + "/t/oauth2/v2.0/token")
			c := mustNew(t, clk.set(&cfg))
			ctx := context.Background()
			if _, err := c.Token(ctx, "", connector); err != nil {
				t.Fatal(err)
			}
			tok.Fail(tt.fail)
			clk.move(tt.skew)
			var got string
			var err error
			eventually(t, "the renewal to settle", func() bool {
				got, err = c.Token(ctx, "", connector)
				_, failed := tok.Counts()
				return (tt.want != "" && got == tt.want && failed >= min(tt.maxAsks, 1)) || (tt.want == "" && err != nil)
			})
			// While the token is valid, retried at most tokenAttempts
			// times per renewRetry.
			for range 100 {
				if tt.want != "" {
					c.Token(ctx, "", connector) //nolint:errcheck
				}
			}
			if _, failed := tok.Counts(); failed > tt.maxAsks {
				t.Errorf("endpoint asked %d times while failing, want at most %d", failed, tt.maxAsks)
			}
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Errorf("Token = %q, %v; want %s", got, err, tt.want)
				}
				return
			}
			wantErr(t, err, ErrUnavailable, []string{"HTTP 503", "expired while the endpoint kept failing", "temporarily_unavailable"})
			if strings.Contains(err.Error(), "tok-") {
				t.Errorf("error holds a token: %v", err)
			}
			// The endpoint is back: the next call gets a token.
			tok.Fail(0)
			if got, err := c.Token(ctx, "", connector); err != nil || got != "tok-2" {
				t.Errorf("after recovery: %q, %v", got, err)
			}
		})
	}
}

// TestTokenFailuresAtStart: with no token yet, a failing endpoint is an
// error at once: ErrUnavailable after a few quick retries for a transient
// failure, ErrConfig for a refusal, a redirect or a dead host named as
// unreachable; never with the secret.
func TestTokenFailuresAtStart(t *testing.T) {
	flaky := tokentest.New(t, testSecret)
	flaky.Fail(-1)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("redirect followed to %s", r.URL)
	}))
	defer evil.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/token", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/t/oauth2/v2.0/token"
	dead.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()

	for _, tt := range []struct {
		name, url, secret string
		kind              error
		want              []string
	}{
		{"503", flaky.URL + "/t/oauth2/v2.0/token", testSecret, ErrUnavailable, []string{"HTTP 503", "check --cloud, --app-tenant and --token-url"}},
		{"wrong secret", flaky.URL + "/t/oauth2/v2.0/token", "wrong-" + testSecret, ErrConfig, []string{"refused app \"app-1\" (HTTP 401", "wrong or expired secret"}},
		{"redirect", redirector.URL + "/t/oauth2/v2.0/token", testSecret, ErrConfig, []string{"HTTP 307", "redirect not followed"}},
		{"unreachable", deadURL, testSecret, ErrUnavailable, []string{"unreachable", "check --token-url, --cloud and the network"}},
		{"not a token endpoint", notFound.URL + "/x", testSecret, ErrConfig, []string{"answered HTTP 404"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tokenURLConfig(tt.url)
			cfg.Secret = tt.secret
			_, err := mustNew(t, cfg).Token(context.Background(), "", connector)
			wantErr(t, err, tt.kind, tt.want, tt.secret)
		})
	}
	if _, failed := flaky.Counts(); failed != tokenAttempts {
		t.Errorf("a 503 endpoint was asked %d times, want %d", failed, tokenAttempts)
	}
}

// TestRenewAfterFailedRenewal: a 401-driven Renew that cannot reach the
// endpoint reports it (ErrUnavailable) instead of handing back the
// rejected token.
func TestRenewAfterFailedRenewal(t *testing.T) {
	tok := tokentest.New(t, testSecret)
	c := mustNew(t, tokenURLConfig(tok.URL+"/t/oauth2/v2.0/token"))
	ctx := context.Background()
	t1, err := c.Token(ctx, "", connector)
	if err != nil {
		t.Fatal(err)
	}
	tok.Fail(-1)
	_, err = c.Renew(ctx, "", connector, t1)
	wantErr(t, err, ErrUnavailable, []string{"renewing the token after a 401", "HTTP 503"})
	tok.Fail(0)
	if t2, err := c.Renew(ctx, "", connector, t1); err != nil || t2 == t1 {
		t.Errorf("Renew after recovery = %q, %v", t2, err)
	}
}

// TestTracerRefusesOtherHosts: the credential's transport sends nothing to
// a host but the fetch's own endpoint, and nothing outside a fetch.
func TestTracerRefusesOtherHosts(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer srv.Close()
	tp := tracer{base: http.DefaultTransport}
	tr := &trace{allow: sameHost("https://login.example/")}
	req, _ := http.NewRequestWithContext(withTrace(context.Background(), tr), http.MethodPost, srv.URL, strings.NewReader("client_secret=x"))
	if _, err := tp.RoundTrip(req); err == nil {
		t.Error("request to another host sent")
	}
	if _, _, _, refused := tr.result(); refused == "" {
		t.Error("refusal not recorded")
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL, nil)
	if _, err := tp.RoundTrip(req); !errors.Is(err, errNoTrace) {
		t.Errorf("request outside a fetch: %v", err)
	}
	if hit {
		t.Error("the server was reached")
	}
	u, _ := url.Parse(srv.URL)
	if sameHost(srv.URL)(u) != true {
		t.Error("sameHost refuses its own host")
	}
}

func TestChoose(t *testing.T) {
	for _, tt := range []struct {
		name     string
		explicit Kind
		c        Configured
		want     Kind
		err      []string
	}{
		{"nothing: secret", "", Configured{}, Secret, nil},
		{"secret", "", Configured{Secret: "MICROSOFT_APP_PASSWORD"}, Secret, nil},
		{"certificate file", "", Configured{Certificate: "--app-certificate-file"}, Certificate, nil},
		{"UserAssignedMSI", "", Configured{ManagedIdentity: "MicrosoftAppType=UserAssignedMSI"}, ManagedIdentity, nil},
		{"token file", "", Configured{WorkloadIdentity: "AZURE_FEDERATED_TOKEN_FILE"}, WorkloadIdentity, nil},
		{"secret and certificate", "", Configured{Secret: "MicrosoftAppPassword", Certificate: "--app-certificate-file"}, "",
			[]string{"a client secret (MicrosoftAppPassword) and a certificate (--app-certificate-file) are both configured", "--auth secret|certificate"}},
		{"three", "", Configured{Secret: "s", Certificate: "c", WorkloadIdentity: "w"}, "", []string{"are all configured"}},
		{"explicit wins", Certificate, Configured{Secret: "s", Certificate: "c"}, Certificate, nil},
		{"explicit against UserAssignedMSI", Secret, Configured{ManagedIdentity: "MicrosoftAppType=UserAssignedMSI"}, "", []string{"--auth secret contradicts MicrosoftAppType=UserAssignedMSI"}},
	} {
		got, _, err := Choose(tt.explicit, tt.c)
		if tt.err != nil {
			wantErr(t, err, ErrConfig, tt.err)
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %s, %v; want %s", tt.name, got, err, tt.want)
		}
	}
	if _, err := ParseKind("password"); !errors.Is(err, ErrConfig) {
		t.Errorf("ParseKind(password) = %v", err)
	}
}

func TestURLs(t *testing.T) {
	for _, tt := range []struct {
		cloud, tenant, want string
	}{
		{"public", "", "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"},
		{"public", "contoso.onmicrosoft.com", "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"},
		{"gcc", "", "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"},
		{"gcch", "", "https://login.microsoftonline.us/MicrosoftServices.onmicrosoft.us/oauth2/v2.0/token"},
		{"dod", "t-1", "https://login.microsoftonline.us/t-1/oauth2/v2.0/token"},
	} {
		if got, _ := TokenURL(blockreportCloud(tt.cloud), tt.tenant); got != tt.want {
			t.Errorf("%s/%s: %s, want %s", tt.cloud, tt.tenant, got, tt.want)
		}
	}
	for host, ok := range map[string]bool{
		"https://login.example/": true, "https://127.0.0.1:8791": true, "https://login.example/adfs/": true,
		"http://login.example/": false, "login.example": false, "https://u:p@login.example/": false, "https://login.example/?x=1": false,
	} {
		if err := CheckAuthorityHost(host); (err == nil) != ok {
			t.Errorf("CheckAuthorityHost(%q) = %v, want ok %v", host, err, ok)
		}
	}
	for u, ok := range map[string]bool{
		"https://login.example/t/oauth2/v2.0/token": true, "http://127.0.0.1:1/t": true, "http://localhost/t": true, "http://[::1]:8/t": true,
		"http://login.example/t": false, "ftp://x/y": false, "/relative": false, "https://u:p@x/t": false,
	} {
		if err := CheckTokenURL(u); (err == nil) != ok {
			t.Errorf("CheckTokenURL(%q) = %v, want ok %v", u, err, ok)
		}
	}
	_, err := New(Config{AppID: "a", Secret: "p", AuthorityHost: "http://login.example/"})
	wantErr(t, err, ErrConfig, []string{"--authority-host", "want https"})
	_, err = New(Config{AppID: "a", Secret: "p", TokenURL: "http://login.example/t"})
	wantErr(t, err, ErrConfig, []string{"--token-url", "plain http"})
	_, err = New(Config{Kind: Certificate, AppID: "a", TokenURL: "https://login.example/t"})
	wantErr(t, err, ErrConfig, []string{"--token-url is for the client secret only"})
}

func blockreportCloud(s string) blockreport.Cloud { return blockreport.Cloud(s) }

// TestTokenURLOtherTenants: with --token-url, tokens of other tenants come
// from the same token service (its tenant segment replaced), so nothing
// goes to a Microsoft login host; with --authority-host as well, they come
// from there through azidentity.
func TestTokenURLOtherTenants(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	cfg := tokenURLConfig(fake.TokenURL("botframework.com"))
	cfg.AppID = faketeams.DefaultAppID
	c := mustNew(t, cfg)
	for _, tenant := range []string{"", testTenant} {
		tok, err := c.Token(context.Background(), tenant, graph)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"": "botframework.com", testTenant: testTenant}[tenant]
		if info, _ := fake.TokenInfo(tok); info.Tenant != want {
			t.Errorf("tenant %q: token from %q, want %s", tenant, info.Tenant, want)
		}
	}
	cfg.AuthorityHost, cfg.HTTPClient = fake.AuthorityHost(), fake.TLSClient()
	c = mustNew(t, cfg)
	if _, err := c.Token(context.Background(), otherTenant, graph); err != nil {
		t.Fatal(err)
	}
	if fake.Stats().Total(faketeams.RouteOpenID) != 1 {
		t.Error("with --authority-host the other tenant's token did not go through azidentity")
	}
	cfg = tokenURLConfig(fake.URL() + "/token")
	_, err := mustNew(t, cfg).Token(context.Background(), testTenant, graph)
	wantErr(t, err, ErrConfig, []string{"not of the form", "--authority-host"})
	if got, ok := tenantTokenURL("http://127.0.0.1:1/a/b/oauth2/v2.0/token", "t/x"); !ok || got != "http://127.0.0.1:1/a/t%2Fx/oauth2/v2.0/token" {
		t.Errorf("tenantTokenURL = %q, %v", got, ok)
	}
}
