package auth

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blockreport/blockreport/faketeams"
)

// TestSecretPerTenantAndScope: one credential serves the connector token
// (botframework.com for a multi-tenant bot) and Graph tokens of customer
// tenants, each fetched once and cached per (tenant, scope).
func TestSecretPerTenantAndScope(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	cfg := tlsConfig(fake, Secret)
	cfg.Secret = testSecret
	c := mustNew(t, cfg)
	ctx := context.Background()
	type req struct{ tenant, scope, wantTenant, wantAud string }
	reqs := []req{
		{"", connector, "botframework.com", "https://api.botframework.com"},
		{testTenant, graph, testTenant, "https://graph.microsoft.com"},
		{otherTenant, graph, otherTenant, "https://graph.microsoft.com"},
		{testTenant, connector, testTenant, "https://api.botframework.com"},
	}
	got := map[string]string{}
	for _, r := range reqs {
		tok, err := c.Token(ctx, r.tenant, r.scope)
		if err != nil {
			t.Fatalf("%s %s: %v", r.tenant, r.scope, err)
		}
		info, ok := fake.TokenInfo(tok)
		if !ok || info.Tenant != r.wantTenant || info.Audience != r.wantAud || info.Credential != faketeams.CredentialSecret {
			t.Errorf("%s %s: token %+v, want tenant %s audience %s by secret", r.tenant, r.scope, info, r.wantTenant, r.wantAud)
		}
		got[r.tenant+"|"+r.scope] = tok
	}
	if len(got) != len(reqs) {
		t.Errorf("%d distinct tokens for %d (tenant, scope) pairs", len(got), len(reqs))
	}
	// Cached: asking again issues nothing new.
	for _, r := range reqs {
		tok, err := c.Token(ctx, r.tenant, r.scope)
		if err != nil || tok != got[r.tenant+"|"+r.scope] {
			t.Errorf("%s %s: second call gave another token (%v)", r.tenant, r.scope, err)
		}
	}
	if n := len(fake.IssuedTokens()); n != len(reqs) {
		t.Errorf("%d tokens issued, want %d", n, len(reqs))
	}
	// One azidentity instance per tenant.
	c.mu.Lock()
	n := len(c.sources)
	c.mu.Unlock()
	if n != 3 {
		t.Errorf("%d credential instances, want 3 (botframework.com and two tenants)", n)
	}
}

// TestSingleTenantConnectorToken: a single-tenant bot's connector token
// comes from its own tenant.
func TestSingleTenantConnectorToken(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	cfg := tlsConfig(fake, Secret)
	cfg.Secret, cfg.AppTenant = testSecret, testTenant
	tok, err := mustNew(t, cfg).Token(context.Background(), "", connector)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := fake.TokenInfo(tok); info.Tenant != testTenant {
		t.Errorf("connector token from tenant %q, want %s", info.Tenant, testTenant)
	}
}

func TestWrongSecret(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	cfg := tlsConfig(fake, Secret)
	cfg.Secret = "wrong-" + testSecret
	_, err := mustNew(t, cfg).Token(context.Background(), "", connector)
	wantErr(t, err, ErrConfig, []string{"HTTP 401", "invalid_client", "AADSTS7000215", "wrong or expired secret", "/botframework.com/oauth2/v2.0/token"}, "wrong-"+testSecret)
}

// TestCertificatePEM: a PEM file with the certificate and its key, as
// uploaded to the app registration, gets tokens; the fake verified the
// PS256 assertion against the registered certificate.
func TestCertificatePEM(t *testing.T) {
	reg, _, _ := testCerts(t)
	fake := startFake(t, faketeams.Config{Entra: faketeams.Entra{Certificates: []*x509.Certificate{reg.Cert}}})
	certs, key, err := ParseCertificate(reg.PEM(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlsConfig(fake, Certificate)
	cfg.Certificates, cfg.Key = certs, key
	c := mustNew(t, cfg)
	for _, tenant := range []string{"", testTenant} {
		tok, err := c.Token(context.Background(), tenant, connector)
		if err != nil {
			t.Fatal(err)
		}
		if info, _ := fake.TokenInfo(tok); info.Credential != faketeams.CredentialCertificate {
			t.Errorf("token by %q, want certificate", info.Credential)
		}
	}
}

// TestCertificatePKCS12: a .pfx with its password file (testdata made by
// openssl pkcs12 -export -legacy) gets tokens; a wrong or missing password
// and the OpenSSL 3 default encryption get errors that say what to do.
func TestCertificatePKCS12(t *testing.T) {
	pfx, err := os.ReadFile("testdata/app.pfx")
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := os.ReadFile("testdata/app.pfx.password")
	pw = []byte(strings.TrimRight(string(pw), "\r\n"))
	regPEM, _ := os.ReadFile("testdata/app.cert.pem")
	reg, err := faketeams.ParseCertificatesPEM(regPEM)
	if err != nil {
		t.Fatal(err)
	}
	fake := startFake(t, faketeams.Config{Entra: faketeams.Entra{Certificates: reg}})
	certs, key, err := ParseCertificate(pfx, pw)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlsConfig(fake, Certificate)
	cfg.Certificates, cfg.Key = certs, key
	tok, err := mustNew(t, cfg).Token(context.Background(), "", connector)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := fake.TokenInfo(tok); info.Credential != faketeams.CredentialCertificate {
		t.Errorf("token by %q, want certificate", info.Credential)
	}

	aes, _ := os.ReadFile("testdata/app-aes.pfx")
	for _, tt := range []struct {
		name     string
		data, pw []byte
		want     string
	}{
		{"wrong password", pfx, []byte("wrong"), "wrong PKCS#12 password"},
		{"no password", pfx, nil, "needs its password"},
		{"AES encryption", aes, pw, "-legacy"},
		{"not a certificate", []byte("hello"), nil, "neither a PEM nor a PKCS#12"},
	} {
		_, _, err := ParseCertificate(tt.data, tt.pw)
		wantErr(t, err, ErrConfig, []string{tt.want}, string(pw))
	}
	_, _, err = ParseCertificate(regPEM, nil)
	wantErr(t, err, ErrConfig, []string{"holds no private key"})
}

// TestCertificateChain: with subject-name/issuer trust only the chain
// (x5c) proves the certificate: without --send-certificate-chain Entra
// refuses it.
func TestCertificateChain(t *testing.T) {
	_, _, ca := testCerts(t)
	leaf, err := faketeams.NewAppCertificate(faketeams.AppCertificateOptions{Subject: "sni-leaf", Issuer: ca})
	if err != nil {
		t.Fatal(err)
	}
	fake := startFake(t, faketeams.Config{Entra: faketeams.Entra{TrustedIssuers: []*x509.Certificate{ca.Cert}}})
	certs, key, err := ParseCertificate(leaf.PEM(ca), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Fatalf("%d certificates parsed, want leaf and issuer", len(certs))
	}
	for _, send := range []bool{false, true} {
		cfg := tlsConfig(fake, Certificate)
		cfg.Certificates, cfg.Key, cfg.SendCertificateChain = certs, key, send
		_, err := mustNew(t, cfg).Token(context.Background(), "", connector)
		if send && err != nil {
			t.Errorf("with the chain: %v", err)
		}
		if !send {
			wantErr(t, err, ErrConfig, []string{"not registered", "wrong or expired certificate", Thumbprint(leaf.Cert)})
		}
	}
}

// TestWrongCertificate: a certificate Entra does not know is refused with
// one line naming its thumbprint and the fix.
func TestWrongCertificate(t *testing.T) {
	reg, other, _ := testCerts(t)
	fake := startFake(t, faketeams.Config{Entra: faketeams.Entra{Certificates: []*x509.Certificate{reg.Cert}}})
	cfg := tlsConfig(fake, Certificate)
	cfg.Certificates, cfg.Key = []*x509.Certificate{other.Cert}, other.Key
	_, err := mustNew(t, cfg).Token(context.Background(), "", connector)
	wantErr(t, err, ErrConfig, []string{"HTTP 401", "AADSTS700027", Thumbprint(other.Cert), "--app-certificate-file", "upload"})

	// A key that belongs to another certificate.
	cfg.Certificates, cfg.Key = []*x509.Certificate{reg.Cert}, other.Key
	_, err = New(cfg)
	wantErr(t, err, ErrConfig, []string{"belongs to none of the certificates"})
}

// TestExpiredCertificate: an expired certificate stops New, before any
// request, with the date and the fix.
func TestExpiredCertificate(t *testing.T) {
	old, err := faketeams.NewAppCertificate(faketeams.AppCertificateOptions{
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	fake := startFake(t, faketeams.Config{Entra: faketeams.Entra{Certificates: []*x509.Certificate{old.Cert}}})
	cfg := tlsConfig(fake, Certificate)
	cfg.Certificates, cfg.Key = []*x509.Certificate{old.Cert}, old.Key
	_, err = New(cfg)
	wantErr(t, err, ErrConfig, []string{"expired on " + old.Cert.NotAfter.UTC().Format("2006-01-02"), "upload it", "--app-certificate-file"})
	if n := fake.Stats().Total(faketeams.RouteToken); n != 0 {
		t.Errorf("%d token requests for an expired certificate", n)
	}
	// Entra refuses it too when the clock says so (the fake's check).
	cfg.Now = func() time.Time { return time.Now().Add(-36 * time.Hour) }
	c := mustNew(t, cfg)
	_, err = c.Token(context.Background(), "", connector)
	wantErr(t, err, ErrConfig, []string{"The key used is expired"})
}

// TestManagedIdentityAppService: a user-assigned identity through
// IDENTITY_ENDPOINT and IDENTITY_HEADER, as on App Service; another
// tenant's token fails with a clear configuration error. (MSAL caches
// managed-identity tokens process-wide, per client id: each test has its
// own identity.)
func TestManagedIdentityAppService(t *testing.T) {
	id := uniqueID("mi-app-service")
	fake := startFake(t, faketeams.Config{Entra: faketeams.Entra{IdentityTenant: testTenant, IdentityClientID: id}})
	t.Setenv("IDENTITY_ENDPOINT", fake.IdentityEndpoint())
	cfg := Config{Kind: ManagedIdentity, AppID: id, AppTenant: testTenant}
	ctx := context.Background()

	// A wrong header, and an identity not assigned to the resource.
	t.Setenv("IDENTITY_HEADER", "wrong-"+fake.IdentityHeader())
	_, err := mustNew(t, cfg).Token(ctx, "", connector)
	wantErr(t, err, ErrConfig, []string{"HTTP 401", "X-IDENTITY-HEADER", "managed identity \"" + id + "\""}, fake.IdentityHeader())
	t.Setenv("IDENTITY_HEADER", fake.IdentityHeader())
	other := cfg
	other.AppID = "not-assigned"
	_, err = mustNew(t, other).Token(ctx, "", connector)
	wantErr(t, err, ErrConfig, []string{"HTTP 400", `user-assigned identity "not-assigned" is assigned`}, fake.IdentityHeader())

	c := mustNew(t, cfg)
	for _, tenant := range []string{"", testTenant, strings.ToUpper(testTenant)} {
		tok, err := c.Token(ctx, tenant, connector)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := fake.TokenInfo(tok)
		if info.Credential != faketeams.CredentialManagedIdentity || info.Audience != faketeams.ConnectorAudience || info.Tenant != testTenant {
			t.Errorf("tenant %q: token %+v, want the identity's connector token", tenant, info)
		}
	}
	if _, err := c.Token(ctx, testTenant, graph); err != nil {
		t.Errorf("Graph in the identity's own tenant: %v", err)
	}
	_, err = c.Token(ctx, otherTenant, graph)
	wantErr(t, err, ErrConfig, []string{"lives in tenant " + testTenant, "cannot get a token for tenant " + otherTenant}, fake.IdentityHeader())
	if n := len(fake.IssuedTokens()); n != 2 {
		t.Errorf("%d tokens issued, want 2 (connector, Graph)", n)
	}

	// Renew skips MSAL's process-wide cache.
	t1, _ := c.Token(ctx, "", connector)
	t2, err := c.Renew(ctx, "", connector, t1)
	if err != nil || t2 == t1 {
		t.Errorf("Renew = %v; want a new token", err)
	}
	if n := len(fake.IssuedTokens()); n != 3 {
		t.Errorf("%d tokens issued, want 3", n)
	}

	// No tenant: refused at New.
	_, err = New(Config{Kind: ManagedIdentity, AppID: "x"})
	wantErr(t, err, ErrConfig, []string{"--app-tenant"})
}

// imdsTransport sends the instance metadata service's requests to the fake.
type imdsTransport struct{ fake *faketeams.Server }

func (i imdsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == "169.254.169.254" {
		u, _ := url.Parse(i.fake.URL())
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = u.Scheme, u.Host
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestManagedIdentityIMDS: without IDENTITY_ENDPOINT azidentity asks the
// instance metadata service (Metadata: true), as on a VM or AKS node.
func TestManagedIdentityIMDS(t *testing.T) {
	id := uniqueID("mi-imds")
	fake := startFake(t, faketeams.Config{Entra: faketeams.Entra{IdentityClientID: id}})
	for _, v := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	c := mustNew(t, Config{Kind: ManagedIdentity, AppID: id, AppTenant: testTenant,
		HTTPClient: &http.Client{Transport: imdsTransport{fake}}})
	tok, err := c.Token(context.Background(), "", connector)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := fake.TokenInfo(tok); info.Credential != faketeams.CredentialManagedIdentity {
		t.Errorf("token %+v", info)
	}
	if fake.Stats().Total(faketeams.RouteIdentity) != 1 {
		t.Errorf("identity route stats %v", fake.Stats().Requests)
	}
}

// TestWorkloadIdentity: a federated service-account token from a file, as
// AKS projects it, gets tokens in any tenant; an expired token or an
// unknown subject are configuration errors.
func TestWorkloadIdentity(t *testing.T) {
	const sa = "system:serviceaccount:blockreport:blockreport"
	fake := startFake(t, faketeams.Config{Entra: faketeams.Entra{FederatedSubjects: []string{sa}}})
	jwt, err := fake.FederatedToken(sa, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlsConfig(fake, WorkloadIdentity)
	cfg.FederatedTokenFile = writeFile(t, "token", []byte(jwt))
	c := mustNew(t, cfg)
	for _, tenant := range []string{"", testTenant} {
		tok, err := c.Token(context.Background(), tenant, connector)
		if err != nil {
			t.Fatal(err)
		}
		if info, _ := fake.TokenInfo(tok); info.Credential != faketeams.CredentialFederated {
			t.Errorf("token %+v, want by federated credential", info)
		}
	}

	expired, _ := fake.FederatedToken(sa, -time.Hour)
	stranger, _ := fake.FederatedToken("system:serviceaccount:other:other", time.Hour)
	for _, tt := range []struct{ name, jwt, want string }{
		{"expired", expired, "AADSTS700024"},
		{"unknown subject", stranger, "AADSTS70021"},
	} {
		cfg.FederatedTokenFile = writeFile(t, "token", []byte(tt.jwt))
		_, err := mustNew(t, cfg).Token(context.Background(), "", connector)
		wantErr(t, err, ErrConfig, []string{tt.want, "federated credential", cfg.FederatedTokenFile}, tt.jwt)
	}
	cfg.FederatedTokenFile = "/nonexistent/token"
	_, err = New(cfg)
	wantErr(t, err, ErrConfig, []string{"federated token file"})
}

// TestRenew: Renew fetches a token from no cache; a second Renew with the
// same stale token, and many at once, fetch nothing more.
func TestRenew(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	cfg := tlsConfig(fake, Secret)
	cfg.Secret = testSecret
	c := mustNew(t, cfg)
	ctx := context.Background()
	t1, err := c.Token(ctx, "", connector)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := c.Renew(ctx, "", connector, t1)
	if err != nil || t2 == t1 || t2 == "" {
		t.Fatalf("Renew = %q, %v; want a new token", t2, err)
	}
	if got, _ := c.Token(ctx, "", connector); got != t2 {
		t.Error("Token after Renew does not return the renewed token")
	}
	if got, _ := c.Renew(ctx, "", connector, t1); got != t2 {
		t.Error("a second Renew of the same stale token fetched again")
	}
	var wg sync.WaitGroup
	toks := make([]string, 20)
	for i := range toks {
		wg.Go(func() { toks[i], _ = c.Renew(ctx, "", connector, t2) })
	}
	wg.Wait()
	for _, tok := range toks {
		if tok == "" || tok == t2 || tok != toks[0] {
			t.Fatalf("concurrent renewals gave %v", toks)
		}
	}
	if n := len(fake.IssuedTokens()); n != 3 {
		t.Errorf("%d tokens issued, want 3 (first, renewed, renewed once for 20 callers)", n)
	}
}

// TestInstanceDiscovery: with the cloud's own login host (no
// --authority-host) MSAL first asks that host for instance metadata; the
// fake stands in for login.microsoftonline.com, and nothing else is asked.
func TestInstanceDiscovery(t *testing.T) {
	fake := startFake(t, faketeams.Config{Entra: faketeams.Entra{TLSHosts: []string{"login.microsoftonline.com"}}})
	u, _ := url.Parse(fake.TLSURL())
	c := mustNew(t, Config{Kind: Secret, AppID: faketeams.DefaultAppID, Secret: testSecret,
		HTTPClient: routeTo(fake, "login.microsoftonline.com", u.Host)})
	tok, err := c.Token(context.Background(), testTenant, graph)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := fake.TokenInfo(tok); info.Tenant != testTenant {
		t.Errorf("token %+v", info)
	}
	st := fake.Stats()
	if st.Total(faketeams.RouteDiscovery) != 1 || st.Total(faketeams.RouteOpenID) != 1 || st.Total(faketeams.RouteToken) != 1 {
		t.Errorf("requests %v, want one instance discovery, one OpenID configuration, one token", st.Requests)
	}
}

// uniqueID is a client id no earlier test in this process used: MSAL's
// managed-identity cache outlives a test (go test -count=N).
func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// TestUntrustedAuthority: an authority whose TLS certificate is not
// trusted is a configuration error (not retried) naming --ca-file.
func TestUntrustedAuthority(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	cfg := tlsConfig(fake, Secret)
	cfg.Secret, cfg.HTTPClient = testSecret, nil // the system's roots only
	_, err := mustNew(t, cfg).Token(context.Background(), "", connector)
	wantErr(t, err, ErrConfig, []string{"does not trust", "--ca-file", fake.AuthorityHost() + "botframework.com/v2.0/.well-known/openid-configuration "})
	if n := fake.Stats().Total(faketeams.RouteOpenID); n != 0 {
		t.Errorf("%d OpenID requests answered over an untrusted connection", n)
	}
}
