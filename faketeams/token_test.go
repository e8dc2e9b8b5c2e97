package faketeams

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTokenPrefix(t *testing.T) {
	s := start(t, Config{TokenPrefix: "tok-canary-"})
	tok := token(t, s)
	if !strings.HasPrefix(tok, "tok-canary-") || len(tok) <= len("tok-canary-") {
		t.Fatalf("token %q does not start with the configured prefix", tok)
	}
	// The prefixed token is accepted like any other.
	req, _ := http.NewRequest(http.MethodGet, s.ServiceURL("amer")+"v3/conversations/a:none/members", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("prefixed token rejected: %d", resp.StatusCode)
	}
}

// assertion builds a client assertion for the token endpoint u, signed
// with cert's key by alg (RS256 or PS256), naming it by thumb ("x5t":
// SHA-1, "x5t#S256": SHA-256) encoded with enc; mod changes the claims.
func assertion(t *testing.T, cert *AppCertificate, alg, thumb string, enc *base64.Encoding, u string, mod func(map[string]any)) string {
	t.Helper()
	var tp []byte
	if thumb == "x5t" {
		h := sha1.Sum(cert.Cert.Raw)
		tp = h[:]
	} else {
		h := sha256.Sum256(cert.Cert.Raw)
		tp = h[:]
	}
	head, _ := json.Marshal(map[string]any{"alg": alg, "typ": "JWT", thumb: enc.EncodeToString(tp)})
	now := time.Now()
	claims := map[string]any{"aud": u, "iss": DefaultAppID, "sub": DefaultAppID, "jti": randomHex(8),
		"nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	if mod != nil {
		mod(claims)
	}
	body, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString(head) + "." + base64.RawURLEncoding.EncodeToString(body)
	sum := sha256.Sum256([]byte(signed))
	var sig []byte
	var err error
	if alg == "PS256" {
		sig, err = rsa.SignPSS(rand.Reader, cert.Key, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, cert.Key, crypto.SHA256, sum[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestClientAssertions: the token endpoint verifies a certificate's
// client assertion as Entra does: RS256 or PS256 by the registered key,
// named by x5t or x5t#S256 (base64url or MSAL's standard base64); aud the
// token URL; iss = sub = client id; not expired; jti used once.
func TestClientAssertions(t *testing.T) {
	reg, err := NewAppCertificate(AppCertificateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewAppCertificate(AppCertificateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, Config{Entra: Entra{Certificates: []*x509.Certificate{reg.Cert}}})
	u := s.TLSURL() + "/tenant-a/oauth2/v2.0/token"
	post := func(a string) (int, string) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultAppID}, "scope": {Scope + " openid profile offline_access"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
		resp, err := s.TLSClient().PostForm(u, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b struct{ Error, ErrorDescription, AccessToken string }
		json.NewDecoder(resp.Body).Decode(&b) //nolint:errcheck
		if resp.StatusCode == 200 {
			return 200, ""
		}
		return resp.StatusCode, b.Error
	}
	replay := assertion(t, reg, "PS256", "x5t#S256", base64.RawURLEncoding, u, nil)
	for _, tt := range []struct {
		name   string
		a      string
		status int
	}{
		{"PS256 x5t#S256 base64url", replay, 200},
		{"PS256 x5t#S256 standard base64 (MSAL)", assertion(t, reg, "PS256", "x5t#S256", base64.StdEncoding, u, nil), 200},
		{"RS256 x5t", assertion(t, reg, "RS256", "x5t", base64.RawURLEncoding, u, nil), 200},
		{"replayed jti", replay, 401},
		{"unregistered certificate", assertion(t, other, "PS256", "x5t#S256", base64.RawURLEncoding, u, nil), 401},
		{"signed by another key", func() string {
			a := assertion(t, other, "PS256", "x5t#S256", base64.RawURLEncoding, u, nil)
			good := assertion(t, reg, "PS256", "x5t#S256", base64.RawURLEncoding, u, nil)
			return good[:strings.LastIndex(good, ".")] + a[strings.LastIndex(a, "."):]
		}(), 401},
		{"wrong aud", assertion(t, reg, "PS256", "x5t#S256", base64.RawURLEncoding, u, func(c map[string]any) { c["aud"] = s.TLSURL() + "/tenant-b/oauth2/v2.0/token" }), 401},
		{"expired", assertion(t, reg, "PS256", "x5t#S256", base64.RawURLEncoding, u, func(c map[string]any) {
			c["exp"], c["nbf"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
		}), 401},
		{"iss is not the client", assertion(t, reg, "PS256", "x5t#S256", base64.RawURLEncoding, u, func(c map[string]any) { c["iss"] = "someone" }), 401},
		{"sub is not the client", assertion(t, reg, "PS256", "x5t#S256", base64.RawURLEncoding, u, func(c map[string]any) { c["sub"] = "someone" }), 401},
		{"no jti", assertion(t, reg, "PS256", "x5t#S256", base64.RawURLEncoding, u, func(c map[string]any) { delete(c, "jti") }), 401},
		{"HS256", func() string {
			a := assertion(t, reg, "PS256", "x5t#S256", base64.RawURLEncoding, u, nil)
			parts := strings.Split(a, ".")
			head, _ := json.Marshal(map[string]any{"alg": "HS256", "x5t#S256": "x"})
			return base64.RawURLEncoding.EncodeToString(head) + "." + parts[1] + "." + parts[2]
		}(), 401},
		{"not a JWT", "abc", 401},
	} {
		if status, code := post(tt.a); status != tt.status || (status != 200 && code != "invalid_client") {
			t.Errorf("%s: %d %s, want %d", tt.name, status, code, tt.status)
		}
	}
	for _, it := range s.IssuedTokens() {
		if it.Credential != CredentialCertificate || it.Tenant != "tenant-a" || it.Audience != ConnectorAudience {
			t.Errorf("issued %+v", it)
		}
	}
}

// TestTokenAudiences: tokens are per tenant and scope, and the connector
// accepts only its own audience (a Graph token gets 401); revoked tokens
// get 401 too.
func TestTokenAudiences(t *testing.T) {
	const graph = "https://graph.microsoft.com/.default"
	s := start(t, Config{Scopes: []string{Scope, graph}, Population: []Conversation{conversation("x", StateActive)}, Limits: NoLimits()})
	get := func(tenant, scope string) string {
		resp, err := http.PostForm(s.TokenURL(tenant), tokenForm(DefaultAppID, DefaultAppSecret, scope))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&b) //nolint:errcheck
		return b.AccessToken
	}
	conn, gr := get("botframework.com", Scope), get("tenant-a", graph)
	if it, _ := s.TokenInfo(gr); it.Tenant != "tenant-a" || it.Audience != "https://graph.microsoft.com" {
		t.Errorf("graph token %+v", it)
	}
	call := func(tok string) int {
		req, _ := http.NewRequest(http.MethodPost, activitiesURL(s, "amer", "a:x"), strings.NewReader(`{"type":"typing"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call(conn); got != http.StatusCreated {
		t.Errorf("connector token: %d", got)
	}
	if got := call(gr); got != http.StatusUnauthorized {
		t.Errorf("Graph token at the connector: %d, want 401", got)
	}
	if n := s.RevokeTokens(); n != 2 {
		t.Errorf("revoked %d, want 2", n)
	}
	if got := call(conn); got != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", got)
	}
}

// TestIdentityEndpoint: the App Service-style endpoint wants the header,
// the api-version, a known resource and the assigned client id.
func TestIdentityEndpoint(t *testing.T) {
	s := start(t, Config{})
	get := func(q url.Values, header string) int {
		req, _ := http.NewRequest(http.MethodGet, s.IdentityEndpoint()+"?"+q.Encode(), nil)
		if header != "" {
			req.Header.Set("X-IDENTITY-HEADER", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := url.Values{"api-version": {"2019-08-01"}, "resource": {ConnectorAudience}, "client_id": {DefaultAppID}}
	with := func(k, v string) url.Values {
		q := url.Values{}
		for kk, vv := range good {
			q[kk] = vv
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	for _, tt := range []struct {
		name   string
		q      url.Values
		header string
		want   int
	}{
		{"ok", good, s.IdentityHeader(), 200},
		{"no header", good, "", 401},
		{"wrong header", good, "nope", 401},
		{"old api version", with("api-version", "2017-09-01"), s.IdentityHeader(), 400},
		{"unknown resource", with("resource", "https://vault.azure.net"), s.IdentityHeader(), 400},
		{"other identity", with("client_id", "someone"), s.IdentityHeader(), 400},
		{"system-assigned", with("client_id", ""), s.IdentityHeader(), 400},
	} {
		if got := get(tt.q, tt.header); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
	if it := s.IssuedTokens(); len(it) != 1 || it[0].Credential != CredentialManagedIdentity || it[0].Tenant != DefaultIdentityTenant {
		t.Errorf("issued %+v", it)
	}
}
