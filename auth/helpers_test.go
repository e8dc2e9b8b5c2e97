package auth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blockreport/blockreport/faketeams"
)

const (
	testSecret  = "s3cr3t-Recognisable-~Secret.Value"
	connector   = "https://api.botframework.com/.default"
	graph       = "https://graph.microsoft.com/.default"
	testTenant  = "11111111-1111-1111-1111-111111111111"
	otherTenant = "22222222-2222-2222-2222-222222222222"
)

// startFake starts a simulated Entra and Teams issuing connector and
// Graph tokens.
func startFake(t *testing.T, cfg faketeams.Config) *faketeams.Server {
	t.Helper()
	if cfg.AppSecret == "" {
		cfg.AppSecret = testSecret
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{connector, graph}
	}
	fake, err := faketeams.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	return fake
}

var (
	certOnce sync.Once
	certs    [3]*faketeams.AppCertificate // registered, unregistered, CA
	certErr  error
)

// testCerts returns three RSA certificates made once per test binary: one
// to register, one that is not registered, and a CA.
func testCerts(t *testing.T) (registered, unregistered, ca *faketeams.AppCertificate) {
	t.Helper()
	certOnce.Do(func() {
		for i, o := range []faketeams.AppCertificateOptions{{Subject: "registered"}, {Subject: "unregistered"}, {Subject: "issuer CA", IsCA: true}} {
			if certs[i], certErr = faketeams.NewAppCertificate(o); certErr != nil {
				return
			}
		}
	})
	if certErr != nil {
		t.Fatal(certErr)
	}
	return certs[0], certs[1], certs[2]
}

// tlsConfig is a Config against fake's TLS authority.
func tlsConfig(fake *faketeams.Server, kind Kind) Config {
	return Config{
		Kind: kind, AppID: faketeams.DefaultAppID, AuthorityHost: fake.AuthorityHost(),
		HTTPClient: fake.TLSClient(),
	}
}

func mustNew(t *testing.T, cfg Config) *Credential {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.pause = func(time.Duration) {}
	return c
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantErr checks that err wraps kind, is one line, contains every want
// and none of the secrets.
func wantErr(t *testing.T, err, kind error, want []string, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Errorf("err %q does not wrap %v", err, kind)
	}
	for _, other := range []error{ErrConfig, ErrUnavailable} {
		if other != kind && errors.Is(err, other) {
			t.Errorf("err %q also wraps %v", err, other)
		}
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
	for _, s := range append(secrets, testSecret) {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("error %q holds a secret", msg)
		}
	}
}

// issued is the fake's token records, for assertions.
func lastIssued(t *testing.T, fake *faketeams.Server) faketeams.IssuedToken {
	t.Helper()
	all := fake.IssuedTokens()
	if len(all) == 0 {
		t.Fatal("no token issued")
	}
	return all[len(all)-1]
}

// routeTo is an HTTP client that trusts fake's CA and connects every
// request for host to addr (the fake), as if DNS pointed there.
func routeTo(fake *faketeams.Server, host, addr string) *http.Client {
	c := fake.TLSClient()
	tr := c.Transport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if h, _, _ := net.SplitHostPort(a); h == host {
			a = addr
		}
		return d.DialContext(ctx, network, a)
	}
	c.Transport = tr
	return c
}
