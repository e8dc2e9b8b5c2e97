package faketeams

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is a SHA-1 thumbprint by definition
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The simulated Microsoft Entra token service: client credentials with a
// secret, a certificate (client assertion) or a federated token (workload
// identity), per tenant and scope, plus the OpenID configuration and
// instance discovery documents MSAL reads first. Wire formats follow the
// Microsoft identity platform's token endpoint and client-assertion pages.

// Routes of the token service in Stats.
const (
	RouteOpenID    = "openid_configuration"
	RouteDiscovery = "instance_discovery"
	RouteIdentity  = "managed_identity"
)

// Audiences and defaults of the token service.
const (
	// ConnectorAudience is the audience of Bot Connector tokens: the
	// connector routes accept no other.
	ConnectorAudience = "https://api.botframework.com"
	// FederatedAudience is the audience a federated (workload identity)
	// assertion must carry.
	FederatedAudience = "api://AzureADTokenExchange"
	// DefaultIdentityTenant is the tenant the simulated managed identity
	// lives in, unless Entra.IdentityTenant says otherwise.
	DefaultIdentityTenant = "00000000-0000-0000-0000-0000000000bb"

	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// clockSkew is the leeway on assertion times, as Entra allows.
	clockSkew = 5 * time.Minute
)

// Credential kinds recorded on issued tokens.
const (
	CredentialSecret          = "secret"
	CredentialCertificate     = "certificate"
	CredentialFederated       = "federated"
	CredentialManagedIdentity = "managed-identity"
)

// Entra configures the simulated Entra token service, its TLS listener and
// the managed-identity endpoint. The zero value accepts the client secret
// only, for any tenant.
type Entra struct {
	// Certificates are the app registration's uploaded certificates: a
	// client assertion signed by the key of one of them (named by its x5t
	// or x5t#S256 thumbprint) is accepted while it is valid.
	Certificates []*x509.Certificate
	// TrustedIssuers turn on subject-name/issuer trust: an assertion whose
	// x5c chain leads to one of these CAs is accepted, its leaf need not be
	// uploaded (Entra's trustedCertificateSubjects; azidentity's
	// SendCertificateChain).
	TrustedIssuers []*x509.Certificate
	// FederatedSubjects are the subjects of the app's federated identity
	// credentials whose issuer is FederatedIssuer() and audience
	// FederatedAudience (a Kubernetes service account:
	// "system:serviceaccount:NAMESPACE:NAME").
	FederatedSubjects []string
	// Tenants the app may get tokens in (consented); empty: any.
	Tenants []string
	// IdentityHeader is the X-IDENTITY-HEADER the managed-identity endpoint
	// requires (App Service's IDENTITY_HEADER); default a random value.
	IdentityHeader string
	// IdentityClientID is the client id of the user-assigned managed
	// identity; default Config.AppID (a UserAssignedMSI bot).
	IdentityClientID string
	// IdentityTenant is the tenant the managed identity lives in; default
	// DefaultIdentityTenant.
	IdentityTenant string
	// TLSListen is the address of the TLS listener, default 127.0.0.1:0.
	TLSListen string
	// TLSHosts are extra names or IPs in the TLS certificate, so a test can
	// route a real login host to this server.
	TLSHosts []string
}

// IssuedToken is what the token service recorded about an access token.
type IssuedToken struct {
	Tenant     string    // tenant of the token endpoint, or the managed identity's
	Audience   string    // the scope without "/.default", or the MI resource
	AppID      string    // client id
	Credential string    // CredentialSecret, CredentialCertificate, ...
	Expires    time.Time // by Config.Now
	Revoked    bool
}

// entraState is the token service's mutable state, under Server.mu.
type entraState struct {
	scopes  map[string]bool      // accepted scopes (with /.default)
	issued  []string             // tokens in issue order
	jtis    map[string]time.Time // assertion ids seen, until they expire
	header  string               // identity header
	fedOnce sync.Once
	fedKey  *rsa.PrivateKey
	fedErr  error
}

func (s *Server) initEntra() error {
	e := &entraState{scopes: map[string]bool{}, jtis: map[string]time.Time{}, header: s.cfg.Entra.IdentityHeader}
	scopes := s.cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{Scope}
	}
	for _, sc := range scopes {
		if !strings.HasSuffix(sc, "/.default") {
			return fmt.Errorf("scope %q: want a resource's /.default scope", sc)
		}
		e.scopes[sc] = true
	}
	if e.header == "" {
		e.header = "fake-identity-header-" + randomHex(8)
	}
	if s.cfg.Entra.IdentityClientID == "" {
		s.cfg.Entra.IdentityClientID = s.cfg.AppID
	}
	if s.cfg.Entra.IdentityTenant == "" {
		s.cfg.Entra.IdentityTenant = DefaultIdentityTenant
	}
	s.entra = e
	return nil
}

// serveEntra answers the token service's and the identity endpoint's
// routes; it reports whether path was one of them.
func (s *Server) serveEntra(w http.ResponseWriter, r *http.Request, path string) bool {
	switch {
	case strings.HasSuffix(path, "/oauth2/v2.0/token"):
		s.serveToken(w, r)
	case strings.HasSuffix(path, "/v2.0/.well-known/openid-configuration"):
		s.serveOpenID(w, r, path)
	case path == "/common/discovery/instance":
		s.serveDiscovery(w, r)
	case path == identityPath, path == imdsPath:
		s.serveIdentity(w, r, path == imdsPath)
	default:
		return false
	}
	return true
}

// baseURL is the scheme and host the request came in on.
func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func (s *Server) jsonReply(w http.ResponseWriter, route string, status int, v any) {
	b, _ := json.Marshal(v)
	s.reply(w, route, "", "", status, b, http.Header{"Cache-Control": {"no-store"}})
}

// serveOpenID is GET /{tenant}/v2.0/.well-known/openid-configuration: the
// endpoints MSAL resolves an authority to. The issuer has the same scheme
// and host as the request, which MSAL checks.
func (s *Server) serveOpenID(w http.ResponseWriter, r *http.Request, path string) {
	if r.Method != http.MethodGet {
		s.jsonReply(w, RouteOpenID, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request"})
		return
	}
	tenant := strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/v2.0/.well-known/openid-configuration")
	if tenant == "" || strings.Contains(tenant, "/") {
		s.jsonReply(w, RouteOpenID, http.StatusNotFound, map[string]string{"error": "invalid_tenant"})
		return
	}
	base := baseURL(r) + "/" + tenant
	s.jsonReply(w, RouteOpenID, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                base + "/v2.0",
		"jwks_uri":                              baseURL(r) + "/" + tenant + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "token"},
		"tenant_region_scope":                   nil,
	})
}

// serveDiscovery is GET /common/discovery/instance, the instance metadata
// MSAL asks a known Microsoft login host for.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	ae, err := url.Parse(r.URL.Query().Get("authorization_endpoint"))
	if r.Method != http.MethodGet || err != nil || ae.Host == "" {
		s.jsonReply(w, RouteDiscovery, http.StatusBadRequest, map[string]any{
			"error": "invalid_instance", "error_description": "AADSTS50049: Unknown or invalid instance.",
		})
		return
	}
	tenant, _, _ := strings.Cut(strings.TrimPrefix(ae.Path, "/"), "/")
	host := r.Host
	s.jsonReply(w, RouteDiscovery, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://" + host + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []map[string]any{{"preferred_network": host, "preferred_cache": host, "aliases": []string{host}}},
	})
}

// serveToken is POST /{tenant}/oauth2/v2.0/token with client credentials.
// Wrong credentials answer Entra-style OAuth errors: 401 invalid_client for
// a bad secret or assertion, 400 for a wrong client, grant type, tenant or
// scope.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	oauthErr := func(status int, code, desc string) {
		s.jsonReply(w, RouteToken, status, map[string]any{"error": code, "error_description": desc, "error_codes": []int{}})
	}
	if r.Method != http.MethodPost {
		oauthErr(http.StatusMethodNotAllowed, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain a valid form.")
		return
	}
	tenant, _, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if t, err := url.PathUnescape(tenant); err == nil {
		tenant = t
	}
	f := r.PostForm
	id, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		// RFC 6749 2.3.1: form-encoded inside Basic (x/oauth2 does this).
		if uu, err := url.QueryUnescape(u); err == nil {
			u = uu
		}
		if pp, err := url.QueryUnescape(p); err == nil {
			p = pp
		}
		id, secret = u, p
	}
	assertion := f.Get("client_assertion")
	kind := CredentialSecret
	switch {
	case f.Get("grant_type") != "client_credentials":
		oauthErr(http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
		return
	case id != s.cfg.AppID:
		oauthErr(http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application with identifier was not found in the directory.")
		return
	case len(s.cfg.Entra.Tenants) > 0 && !slices.ContainsFunc(s.cfg.Entra.Tenants, func(t string) bool { return strings.EqualFold(t, tenant) }):
		oauthErr(http.StatusBadRequest, "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant.", id, tenant))
		return
	case s.noServicePrincipal(tenant):
		oauthErr(http.StatusBadRequest, "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", id, tenant))
		return
	case secret != "" && assertion != "":
		oauthErr(http.StatusBadRequest, "invalid_request", "AADSTS900023: Send either client_secret or client_assertion, not both.")
		return
	case assertion != "":
		if f.Get("client_assertion_type") != assertionType {
			oauthErr(http.StatusBadRequest, "invalid_request", "AADSTS700023: client_assertion_type must be "+assertionType+".")
			return
		}
		var err error
		if kind, err = s.checkAssertion(assertion, id, baseURL(r)+r.URL.Path); err != nil {
			oauthErr(http.StatusUnauthorized, "invalid_client", err.Error())
			return
		}
	case secret != s.cfg.AppSecret:
		oauthErr(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}
	scope, ok := s.requestedScope(f.Get("scope"))
	if !ok {
		oauthErr(http.StatusBadRequest, "invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' is not valid.")
		return
	}
	tok, ttl := s.issue(IssuedToken{Tenant: tenant, Audience: strings.TrimSuffix(scope, "/.default"), AppID: id, Credential: kind})
	s.jsonReply(w, RouteToken, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": tok,
	})
}

// requestedScope is the one resource scope of a client-credentials
// request; MSAL adds the OIDC scopes, which Entra ignores.
func (s *Server) requestedScope(raw string) (string, bool) {
	var res []string
	for _, sc := range strings.Fields(raw) {
		switch sc {
		case "openid", "offline_access", "profile":
		default:
			res = append(res, sc)
		}
	}
	if len(res) != 1 || (!s.entra.scopes[res[0]] && !s.graphScope(res[0])) {
		return "", false
	}
	return res[0], true
}

// issue records and returns a new access token and its lifetime in seconds.
func (s *Server) issue(it IssuedToken) (string, int) {
	tok := s.cfg.TokenPrefix + randomHex(32)
	s.mu.Lock()
	defer s.mu.Unlock()
	it.Expires = s.cfg.Now().Add(s.cfg.TokenTTL)
	s.tokens[tok] = it
	s.entra.issued = append(s.entra.issued, tok)
	s.stats.TokensIssued++
	return tok, int(s.cfg.TokenTTL / time.Second)
}

// TokenInfo tells what was recorded about an access token this server
// issued (ok is false for a token it never issued).
func (s *Server) TokenInfo(token string) (IssuedToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.tokens[token]
	return it, ok
}

// IssuedTokens lists what was recorded about every issued token, oldest
// first (the tokens themselves are not returned).
func (s *Server) IssuedTokens() []IssuedToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]IssuedToken, 0, len(s.entra.issued))
	for _, t := range s.entra.issued {
		out = append(out, s.tokens[t])
	}
	return out
}

// RevokeTokens makes every token issued so far invalid, as a key rollover
// or a revoked credential would: the connector answers them 401. It
// returns how many were revoked.
func (s *Server) RevokeTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, it := range s.tokens {
		if !it.Revoked {
			it.Revoked = true
			s.tokens[k] = it
			n++
		}
	}
	return n
}

// bearer returns the record of the request's bearer token if it is valid
// now (issued here, not expired, not revoked) and for audience.
func (s *Server) bearer(r *http.Request, audience string) (IssuedToken, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return IssuedToken{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.tokens[tok]
	return it, ok && !it.Revoked && s.cfg.Now().Before(it.Expires) && it.Audience == audience
}

// authorized tells whether the request carries a valid Bot Connector token.
func (s *Server) authorized(r *http.Request) bool {
	_, ok := s.bearer(r, ConnectorAudience)
	return ok
}

// jwt is a parsed compact JWS.
type jwt struct {
	header  map[string]any
	claims  map[string]any
	signed  []byte // header.payload
	sig     []byte
	alg     string
	rawHead string
}

func parseJWT(s string) (*jwt, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWT")
	}
	var t jwt
	for i, dst := range []*map[string]any{&t.header, &t.claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("JWT part %d is not base64url", i+1)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return nil, fmt.Errorf("JWT part %d is not a JSON object", i+1)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("JWT signature is not base64url")
	}
	t.signed, t.sig = []byte(parts[0]+"."+parts[1]), sig
	t.alg, _ = t.header["alg"].(string)
	t.rawHead = parts[0]
	return &t, nil
}

func (t *jwt) str(name string) string {
	v, _ := t.claims[name].(string)
	return v
}

// time reads a NumericDate claim.
func (t *jwt) time(name string) (time.Time, bool) {
	f, ok := t.claims[name].(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// audiences reads aud, a string or an array of strings.
func (t *jwt) audiences() []string {
	switch v := t.claims["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, a := range v {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// verify checks the RS256 or PS256 signature with key.
func (t *jwt) verify(key *rsa.PublicKey) error {
	sum := sha256.Sum256(t.signed)
	switch t.alg {
	case "RS256":
		return rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], t.sig)
	case "PS256":
		return rsa.VerifyPSS(key, crypto.SHA256, sum[:], t.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	return fmt.Errorf("unsupported alg %q: want RS256 or PS256", t.alg)
}

// thumbprint decodes an x5t header, which MSAL writes in standard base64
// and the Entra documentation in base64url.
func thumbprint(v any) []byte {
	s, _ := v.(string)
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

// checkAssertion verifies a client assertion for clientID posted to the
// token endpoint tokenURL, and tells which credential it is: an
// application certificate (iss = sub = client id) or a federated token.
func (s *Server) checkAssertion(raw, clientID, tokenURL string) (string, error) {
	t, err := parseJWT(raw)
	if err != nil {
		return "", fmt.Errorf("AADSTS50027: JWT token is invalid or malformed: %v.", err)
	}
	if iss := t.str("iss"); iss != clientID {
		if iss == s.FederatedIssuer() {
			return CredentialFederated, s.checkFederated(t)
		}
		if t.str("sub") == clientID || iss == "" {
			return "", errors.New("AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter.")
		}
		return "", fmt.Errorf("AADSTS700211: No matching federated identity record found for presented assertion issuer '%s'.", iss)
	}
	if t.str("sub") != clientID {
		return "", errors.New("AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter.")
	}
	cert, err := s.signingCertificate(t)
	if err != nil {
		return "", err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return "", errors.New("AADSTS700027: Client assertion contains an invalid signature. [Reason - The key is not an RSA key.]")
	}
	if err := t.verify(pub); err != nil {
		return "", fmt.Errorf("AADSTS700027: Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value (%s).]", t.alg)
	}
	if !slices.Contains(t.audiences(), tokenURL) {
		return "", fmt.Errorf("AADSTS50027: JWT token is invalid or malformed: aud %q is not the token endpoint %s.", t.audiences(), tokenURL)
	}
	if err := s.checkTimes(t, 0); err != nil {
		return "", err
	}
	if err := s.checkJTI(t); err != nil {
		return "", err
	}
	return CredentialCertificate, nil
}

// signingCertificate finds the certificate that signed an assertion: an
// uploaded one by thumbprint, or the leaf of an x5c chain that leads to a
// trusted issuer. It must be valid now.
func (s *Server) signingCertificate(t *jwt) (*x509.Certificate, error) {
	now := s.cfg.Now()
	expired := func(c *x509.Certificate) error {
		if now.After(c.NotAfter) || now.Before(c.NotBefore) {
			return fmt.Errorf("AADSTS700027: Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '%X']", sha1.Sum(c.Raw)) //nolint:gosec
		}
		return nil
	}
	s1, s256 := thumbprint(t.header["x5t"]), thumbprint(t.header["x5t#S256"])
	if len(s1) == 0 && len(s256) == 0 {
		return nil, errors.New("AADSTS700027: Client assertion contains an invalid signature. [Reason - The assertion has no x5t or x5t#S256 header.]")
	}
	matches := func(c *x509.Certificate) bool {
		h1, h256 := sha1.Sum(c.Raw), sha256.Sum256(c.Raw) //nolint:gosec
		return (len(s1) > 0 && string(s1) == string(h1[:])) || (len(s256) > 0 && string(s256) == string(h256[:]))
	}
	for _, c := range s.cfg.Entra.Certificates {
		if matches(c) {
			return c, expired(c)
		}
	}
	if chain, ok := t.header["x5c"].([]any); ok && len(chain) > 0 && len(s.cfg.Entra.TrustedIssuers) > 0 {
		var certs []*x509.Certificate
		for _, v := range chain {
			str, _ := v.(string)
			der, err := base64.StdEncoding.DecodeString(str)
			if err != nil {
				return nil, errors.New("AADSTS50027: JWT token is invalid or malformed: x5c is not standard base64 DER.")
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, errors.New("AADSTS50027: JWT token is invalid or malformed: x5c holds no certificate.")
			}
			certs = append(certs, c)
		}
		leaf := certs[0]
		if !matches(leaf) {
			return nil, errors.New("AADSTS700027: Client assertion contains an invalid signature. [Reason - The thumbprint does not name the first x5c certificate.]")
		}
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		for _, c := range s.cfg.Entra.TrustedIssuers {
			roots.AddCert(c)
		}
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, fmt.Errorf("AADSTS700027: Client assertion contains an invalid signature. [Reason - The certificate chain is not trusted: %v]", err)
		}
		return leaf, nil
	}
	return nil, errors.New("AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.")
}

// checkTimes checks exp and nbf against the clock; maxLife > 0 also bounds
// exp - nbf.
func (s *Server) checkTimes(t *jwt, maxLife time.Duration) error {
	now := s.cfg.Now()
	exp, ok := t.time("exp")
	if !ok {
		return errors.New("AADSTS50027: JWT token is invalid or malformed: no exp claim.")
	}
	nbf, hasNbf := t.time("nbf")
	if now.After(exp.Add(clockSkew)) || (hasNbf && now.Add(clockSkew).Before(nbf)) {
		return fmt.Errorf("AADSTS700024: Client assertion is not within its valid time range. Current time: %s, expiry time of assertion %s.",
			now.UTC().Format(time.RFC3339), exp.UTC().Format(time.RFC3339))
	}
	if maxLife > 0 && hasNbf && exp.Sub(nbf) > maxLife {
		return errors.New("AADSTS700025: Client assertion lifetime is too long.")
	}
	return nil
}

// checkJTI rejects an assertion without an id or one seen before.
func (s *Server) checkJTI(t *jwt) error {
	jti := t.str("jti")
	if jti == "" {
		return errors.New("AADSTS50027: JWT token is invalid or malformed: no jti claim.")
	}
	exp, _ := t.time("exp")
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, until := range s.entra.jtis {
		if now.After(until.Add(clockSkew)) {
			delete(s.entra.jtis, k)
		}
	}
	if _, seen := s.entra.jtis[jti]; seen {
		return errors.New("AADSTS50027: JWT token is invalid or malformed: the assertion (jti) was already used.")
	}
	s.entra.jtis[jti] = exp
	return nil
}

// FederatedIssuer is the issuer of the federated tokens this server mints
// (FederatedToken), as a Kubernetes cluster's OIDC issuer would be.
func (s *Server) FederatedIssuer() string { return s.tls.url + "/federation" }

func (s *Server) federationKey() (*rsa.PrivateKey, error) {
	e := s.entra
	e.fedOnce.Do(func() { e.fedKey, e.fedErr = rsa.GenerateKey(rand.Reader, 2048) })
	return e.fedKey, e.fedErr
}

// FederatedToken mints a service-account token for subject, valid for ttl
// from Config.Now (negative: already expired), with audience
// FederatedAudience: what the kubelet projects into
// AZURE_FEDERATED_TOKEN_FILE.
func (s *Server) FederatedToken(subject string, ttl time.Duration) (string, error) {
	key, err := s.federationKey()
	if err != nil {
		return "", err
	}
	now := s.cfg.Now()
	head, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "faketeams"})
	claims, _ := json.Marshal(map[string]any{
		"iss": s.FederatedIssuer(), "sub": subject, "aud": []string{FederatedAudience},
		"iat": now.Unix(), "nbf": now.Add(min(ttl, 0)).Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix(),
	})
	signed := base64.RawURLEncoding.EncodeToString(head) + "." + base64.RawURLEncoding.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// checkFederated verifies a federated assertion minted by FederatedToken
// against the app's federated identity credentials.
func (s *Server) checkFederated(t *jwt) error {
	key, err := s.federationKey()
	if err != nil {
		return err
	}
	if t.alg != "RS256" || t.verify(&key.PublicKey) != nil {
		return errors.New("AADSTS700027: Client assertion contains an invalid signature (federated token not signed by its issuer).")
	}
	if err := s.checkTimes(t, 0); err != nil {
		return err
	}
	sub := t.str("sub")
	if !slices.Contains(t.audiences(), FederatedAudience) || !slices.Contains(s.cfg.Entra.FederatedSubjects, sub) {
		return fmt.Errorf("AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'.",
			t.str("iss"), sub, strings.Join(t.audiences(), ","))
	}
	return nil
}
