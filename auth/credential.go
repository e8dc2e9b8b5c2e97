package auth

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	blockreport "github.com/blockreport/blockreport"
)

const (
	// refreshEarly is how long before expiry a cached token is renewed (in
	// the background, while it is still used).
	refreshEarly = 5 * time.Minute
	// tokenAttempts bounds the quick retries of a transient endpoint
	// failure (network error, 5xx, 429), tokenBackoff doubling in between.
	tokenAttempts = 3
	tokenBackoff  = 200 * time.Millisecond
	// renewRetry is how long a still valid token is used after a failed
	// renewal before the endpoint is tried again.
	renewRetry = 15 * time.Second
	// defaultTimeout bounds one request to a token or identity endpoint.
	defaultTimeout = 30 * time.Second
)

// Config configures a Credential. Secrets in it never appear in an error
// or a log line.
type Config struct {
	Kind  Kind   // default Secret
	AppID string // the app (client) id; for ManagedIdentity the user-assigned identity's client id
	// AppTenant is the bot's own tenant: a single-tenant bot's, or the one
	// its managed identity lives in. Empty: a multi-tenant bot, whose
	// connector token comes from the cloud's botframework.com tenant.
	AppTenant string
	Cloud     blockreport.Cloud // default public
	// AuthorityHost overrides the cloud's Entra login host (https only).
	AuthorityHost string

	// Secret is the client secret (Kind Secret).
	Secret string
	// TokenURL, with Kind Secret, is the whole token endpoint of the
	// connector token (tenant ""), fetched without azidentity: https, or
	// plain http to a loopback host. Unless AuthorityHost is set, other
	// tenants' tokens come from the same service, the tenant segment of
	// ".../{tenant}/oauth2/v2.0/token" replaced.
	TokenURL string

	// Certificates and Key are the certificate credential (Kind
	// Certificate): the certificate whose key is Key, and its chain.
	Certificates []*x509.Certificate
	Key          crypto.PrivateKey
	// SendCertificateChain sends the chain (x5c) with each assertion, for
	// subject-name/issuer trust.
	SendCertificateChain bool

	// FederatedTokenFile holds the federated (service-account) token of a
	// workload identity; it is read again as the kubelet rotates it.
	FederatedTokenFile string

	// HTTPClient is the base client of token and identity requests
	// (default: one with a 30 s timeout). Redirects are never followed.
	HTTPClient *http.Client
	Logger     *slog.Logger     // default discards
	Now        func() time.Time // default time.Now
}

// Credential gets access tokens for the app from Microsoft Entra (or a
// managed-identity endpoint) through azidentity, one credential instance
// per tenant for its whole life, and caches them per tenant and scope. It
// is safe for concurrent use.
type Credential struct {
	cfg        Config
	authority  string // Entra login host, with a trailing slash
	discovery  bool   // MSAL instance discovery (a known cloud login host)
	connTenant string // tenant of the connector token
	client     *http.Client
	log        *slog.Logger
	now        func() time.Time
	pause      func(time.Duration)
	redact     *strings.Replacer
	certDesc   string // signing certificate, for messages

	mu      sync.Mutex
	sources map[string]*source
	entries map[entryKey]*entry
}

// source is where one tenant's tokens come from.
type source struct {
	tenant   string
	endpoint string // token or identity endpoint, for messages
	tokenURL bool   // the hand-written client of --token-url
	allow    func(*url.URL) bool
	direct   *clientcredentials.Config              // tokenURL
	build    func() (azcore.TokenCredential, error) // azidentity
	// global: the library caches in the process, not per instance (MSAL's
	// managed identity), so a fresh token is asked for with claims, which
	// skip that cache and are not sent to the identity endpoint.
	global bool

	mu   sync.Mutex
	cred azcore.TokenCredential
}

func (s *source) tenantDesc() string { return "tenant " + s.tenant }

type entryKey struct{ source, scope string }

// entry is the cached token of one (tenant, scope).
type entry struct {
	tok     string
	exp     time.Time
	refresh time.Time // renew from then on
	retryAt time.Time // no renewal attempt before, after a failed one
	failing bool
	flight  *flight // the fetch in progress
}

type flight struct {
	done chan struct{}
	tok  string
	err  error
}

// New checks cfg and returns a Credential. It contacts nothing yet.
func New(cfg Config) (*Credential, error) {
	if cfg.Kind == "" {
		cfg.Kind = Secret
	}
	if _, err := ParseKind(string(cfg.Kind)); err != nil {
		return nil, err
	}
	if cfg.AppID == "" {
		return nil, configErrorf("no app id: set --app-id (or MicrosoftAppId, AZURE_CLIENT_ID)")
	}
	l, err := login(cfg.Cloud)
	if err != nil {
		return nil, err
	}
	authority := l.authority
	if cfg.AuthorityHost != "" {
		if err := CheckAuthorityHost(cfg.AuthorityHost); err != nil {
			return nil, configErrorf("--authority-host: %v", err)
		}
		authority = strings.TrimSuffix(strings.TrimSpace(cfg.AuthorityHost), "/") + "/"
	}
	c := &Credential{
		cfg: cfg, authority: authority, discovery: knownAuthority(authority),
		connTenant: cfg.AppTenant, log: cfg.Logger, now: cfg.Now, pause: time.Sleep,
		sources: map[string]*source{}, entries: map[entryKey]*entry{},
	}
	if c.connTenant == "" {
		c.connTenant = l.botTenant
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	var secrets []string
	for _, s := range []string{cfg.Secret, os.Getenv("IDENTITY_HEADER"), os.Getenv("MSI_SECRET")} {
		if s != "" {
			secrets = append(secrets, s, "[redacted]")
		}
	}
	c.redact = strings.NewReplacer(append(secrets, "\x00", "")...)

	if cfg.TokenURL != "" && cfg.Kind != Secret {
		return nil, configErrorf("--token-url is for the client secret only; point --authority-host at the token service for the %s", c.kindName())
	}
	attrs := []any{"kind", string(cfg.Kind), "app_id", cfg.AppID}
	switch cfg.Kind {
	case Secret:
		if cfg.Secret == "" {
			return nil, configErrorf("no app password: set --app-password-file or MICROSOFT_APP_PASSWORD")
		}
		if cfg.TokenURL != "" {
			if err := CheckTokenURL(cfg.TokenURL); err != nil {
				return nil, configErrorf("--token-url: %v", err)
			}
		}
	case Certificate:
		cert, err := checkCertificate(cfg, c.now())
		if err != nil {
			return nil, err
		}
		c.certDesc = certDesc(cert)
		attrs = append(attrs, "certificate", cert.Subject.String(), "thumbprint", Thumbprint(cert),
			"not_after", cert.NotAfter.UTC().Format(time.RFC3339), "send_chain", cfg.SendCertificateChain)
		if left := cert.NotAfter.Sub(c.now()); left < 30*24*time.Hour {
			c.log.Warn("the app certificate expires soon: upload a new one and switch --app-certificate-file before it does",
				"thumbprint", Thumbprint(cert), "expires_in", left.Round(time.Hour))
		}
	case ManagedIdentity:
		if cfg.AppTenant == "" {
			return nil, configErrorf("managed identity needs the tenant it lives in: set --app-tenant (or MicrosoftAppTenantId)")
		}
		src, _ := managedidentity.GetSource()
		attrs = append(attrs, "identity_source", string(src), "identity_endpoint", c.identityEndpoint())
	case WorkloadIdentity:
		if cfg.FederatedTokenFile == "" {
			return nil, configErrorf("workload identity needs the federated token file: set AZURE_FEDERATED_TOKEN_FILE (or --federated-token-file)")
		}
		if _, err := os.Stat(cfg.FederatedTokenFile); err != nil {
			return nil, configErrorf("federated token file: %v", err)
		}
		attrs = append(attrs, "token_file", cfg.FederatedTokenFile)
	}

	base := cfg.HTTPClient
	if base == nil {
		base = &http.Client{}
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.client = &http.Client{
		Transport: tracer{base: rt},
		// The credential goes to the token endpoint only: a redirect is an
		// error, never followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       base.Timeout,
	}
	if c.client.Timeout <= 0 {
		c.client.Timeout = defaultTimeout
	}
	// Build the connector token's source now: a key the library refuses
	// is a configuration error before anything is sent.
	src, err := c.source("")
	if err != nil {
		return nil, err
	}
	if src.build != nil {
		if _, err := src.credential(false); err != nil {
			return nil, configErrorf("%s for %s: %s", c.kindName(), src.tenantDesc(), c.oneLine(firstLine(err.Error()), 300))
		}
	}
	attrs = append(attrs, "connector_tenant", c.connTenant, "token_endpoint", src.endpoint)
	c.log.Info("credential", attrs...)
	return c, nil
}

// identityEndpoint is the managed-identity endpoint azidentity will use.
func (c *Credential) identityEndpoint() string {
	for _, name := range []string{"IDENTITY_ENDPOINT", "MSI_ENDPOINT"} {
		if v := os.Getenv(name); v != "" {
			if u, err := url.Parse(v); err == nil {
				u.RawQuery = ""
				return u.String()
			}
		}
	}
	return "http://169.254.169.254/metadata/identity/oauth2/token"
}

// source returns the token source of tenant ("": the connector's token
// tenant), creating it on first use.
func (c *Credential) source(tenant string) (*source, error) {
	if c.cfg.Kind == ManagedIdentity && tenant != "" && !strings.EqualFold(tenant, c.cfg.AppTenant) {
		return nil, configErrorf("managed identity %q lives in tenant %s and cannot get a token for tenant %s: a managed identity gets tokens only in its own tenant (for other tenants use an app registration with a certificate or a federated credential)",
			c.cfg.AppID, c.cfg.AppTenant, tenant)
	}
	key, name := strings.ToLower(tenant), tenant
	direct := ""
	switch {
	case c.cfg.Kind == ManagedIdentity:
		key, name = "", c.cfg.AppTenant
	case tenant == "" && c.cfg.TokenURL != "":
		key, name, direct = "\x00token-url", c.connTenant, strings.TrimSpace(c.cfg.TokenURL)
	case tenant == "":
		key, name = strings.ToLower(c.connTenant), c.connTenant
	}
	if direct == "" && c.cfg.TokenURL != "" && c.cfg.AuthorityHost == "" {
		// Another tenant's token from the same token service as the
		// connector's: nothing goes to a login host --token-url replaced.
		u, ok := tenantTokenURL(c.cfg.TokenURL, name)
		if !ok {
			return nil, configErrorf("--token-url %s is not of the form .../{tenant}/oauth2/v2.0/token, so it gives no token for tenant %s: set --authority-host", c.oneLine(c.cfg.TokenURL, 200), name)
		}
		key, direct = "\x00token-url|"+key, u
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sources[key]; ok {
		return s, nil
	}
	s := &source{tenant: name}
	opts := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: c.authority},
		Transport: c.client,
		// Retries are ours (fetch), so that they are bounded and a valid
		// token goes on being used meanwhile.
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Telemetry: policy.TelemetryOptions{ApplicationID: "blockreport"},
	}
	switch {
	case direct != "":
		s.endpoint, s.tokenURL = direct, true
		s.allow = sameHost(s.endpoint)
		s.direct = &clientcredentials.Config{
			ClientID: c.cfg.AppID, ClientSecret: c.cfg.Secret, TokenURL: s.endpoint,
			// Microsoft documents the form-body style; auto-detection would
			// send the secret twice on a failure.
			AuthStyle: oauth2.AuthStyleInParams,
		}
	case c.cfg.Kind == ManagedIdentity:
		s.endpoint = c.identityEndpoint()
		s.allow = sameHost(s.endpoint, os.Getenv("IDENTITY_ENDPOINT"), os.Getenv("MSI_ENDPOINT"), "http://169.254.169.254/")
		id := azidentity.ClientID(c.cfg.AppID)
		s.global = true
		s.build = func() (azcore.TokenCredential, error) {
			return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts, ID: id})
		}
	default:
		s.endpoint = c.authority + url.PathEscape(name) + "/oauth2/v2.0/token"
		s.allow = sameHost(c.authority)
		cfg, noDiscovery := c.cfg, !c.discovery
		s.build = func() (azcore.TokenCredential, error) {
			switch cfg.Kind {
			case Certificate:
				return azidentity.NewClientCertificateCredential(name, cfg.AppID, cfg.Certificates, cfg.Key, &azidentity.ClientCertificateCredentialOptions{
					ClientOptions: opts, DisableInstanceDiscovery: noDiscovery, SendCertificateChain: cfg.SendCertificateChain,
				})
			case WorkloadIdentity:
				return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
					ClientOptions: opts, DisableInstanceDiscovery: noDiscovery,
					ClientID: cfg.AppID, TenantID: name, TokenFilePath: cfg.FederatedTokenFile,
				})
			}
			return azidentity.NewClientSecretCredential(name, cfg.AppID, cfg.Secret, &azidentity.ClientSecretCredentialOptions{
				ClientOptions: opts, DisableInstanceDiscovery: noDiscovery,
			})
		}
	}
	c.sources[key] = s
	return s, nil
}

// tenantTokenURL is tokenURL, a ".../{tenant}/oauth2/v2.0/token" endpoint,
// for tenant.
func tenantTokenURL(tokenURL, tenant string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(tokenURL))
	if err != nil {
		return "", false
	}
	segs := strings.Split(u.EscapedPath(), "/")
	n := len(segs)
	if n < 5 || segs[n-3] != "oauth2" || segs[n-2] != "v2.0" || segs[n-1] != "token" {
		return "", false
	}
	segs[n-4] = url.PathEscape(tenant)
	p := strings.Join(segs, "/")
	if u.Path, err = url.PathUnescape(p); err != nil {
		return "", false
	}
	u.RawPath = p
	return u.String(), true
}

// credential returns the source's azidentity credential; fresh replaces it
// by a new instance, whose cache is empty.
func (s *source) credential(fresh bool) (azcore.TokenCredential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cred == nil || fresh {
		cred, err := s.build()
		if err != nil {
			return nil, err
		}
		s.cred = cred
	}
	return s.cred, nil
}

// freshClaims is a claims request (the shape of a revocation challenge)
// that makes MSAL's managed-identity client skip its process-wide cache.
const freshClaims = `{"access_token":{"nbf":{"essential":true}}}`

// get makes one token request.
func (s *source) get(ctx context.Context, client *http.Client, scope string, fresh bool) (azcore.AccessToken, error) {
	if s.direct != nil {
		cc := *s.direct
		cc.Scopes = []string{scope}
		tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, client))
		if err != nil {
			return azcore.AccessToken{}, err
		}
		return azcore.AccessToken{Token: tok.AccessToken, ExpiresOn: tok.Expiry}, nil
	}
	cred, err := s.credential(fresh && !s.global)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	tro := policy.TokenRequestOptions{Scopes: []string{scope}}
	if fresh && s.global {
		tro.Claims = freshClaims
	}
	return cred.GetToken(ctx, tro)
}

// fetch gets a token from src, retrying transient failures a few times
// with a short backoff. fresh asks for a token from no cache.
func (c *Credential) fetch(src *source, scope string, fresh bool) (azcore.AccessToken, *failure) {
	d := tokenBackoff
	for n := 1; ; n++ {
		tr := &trace{allow: src.allow}
		ctx, cancel := context.WithTimeout(withTrace(context.Background(), tr), 2*c.client.Timeout)
		tok, err := src.get(ctx, c.client, scope, fresh && n == 1)
		cancel()
		if err == nil {
			if tok.Token == "" {
				return tok, &failure{false, fmt.Sprintf("%s answered without an access token", src.endpoint)}
			}
			return tok, nil
		}
		f := c.classify(src, tr, err)
		if !f.transient || n >= tokenAttempts {
			return tok, &f
		}
		c.pause(d)
		d *= 2
	}
}

// Token returns a cached or new access token for scope in tenant. tenant
// "" is the Bot Connector's token tenant (the single-tenant bot's own
// tenant, else botframework.com for the cloud). It never blocks while a
// cached token is valid; renewal happens early in the background or on the
// call after the refresh threshold.
func (c *Credential) Token(ctx context.Context, tenant, scope string) (string, error) {
	src, k, err := c.key(tenant, scope)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	e := c.entry(k)
	now := c.now()
	if e.tok != "" && now.Before(e.exp) {
		if !now.Before(e.refresh) && e.flight == nil && !now.Before(e.retryAt) {
			c.start(src, k, e, false)
		}
		tok := e.tok
		c.mu.Unlock()
		return tok, nil
	}
	f := e.flight
	if f == nil {
		f = c.start(src, k, e, false)
	}
	c.mu.Unlock()
	return f.wait(ctx)
}

// Renew drops the cached token for (tenant, scope) if it is still stale,
// fetches a fresh one (from no cache), and returns it. For a connector
// 401: renew once, retry once.
func (c *Credential) Renew(ctx context.Context, tenant, scope, stale string) (string, error) {
	src, k, err := c.key(tenant, scope)
	if err != nil {
		return "", err
	}
	for {
		c.mu.Lock()
		e := c.entry(k)
		if f := e.flight; f != nil {
			// A fetch is under way: it may bring a new token.
			c.mu.Unlock()
			if _, err := f.wait(ctx); err != nil && ctx.Err() != nil {
				return "", err
			}
			continue
		}
		if e.tok != "" && e.tok != stale && c.now().Before(e.exp) {
			tok := e.tok // renewed meanwhile
			c.mu.Unlock()
			return tok, nil
		}
		if e.tok == stale {
			e.tok, e.exp, e.refresh = "", time.Time{}, time.Time{}
		}
		f := c.start(src, k, e, true)
		c.mu.Unlock()
		return f.wait(ctx)
	}
}

func (c *Credential) key(tenant, scope string) (*source, entryKey, error) {
	if strings.TrimSpace(scope) == "" {
		return nil, entryKey{}, configErrorf("token request without a scope")
	}
	src, err := c.source(tenant)
	if err != nil {
		return nil, entryKey{}, err
	}
	return src, entryKey{strings.ToLower(src.endpoint + "|" + src.tenant), scope}, nil
}

// entry returns the cache entry of k; c.mu is held.
func (c *Credential) entry(k entryKey) *entry {
	e := c.entries[k]
	if e == nil {
		e = &entry{}
		c.entries[k] = e
	}
	return e
}

func (f *flight) wait(ctx context.Context) (string, error) {
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for a token: %w", ctx.Err())
	}
}

// start fetches a token for e in the background; c.mu is held.
func (c *Credential) start(src *source, k entryKey, e *entry, fresh bool) *flight {
	f := &flight{done: make(chan struct{})}
	e.flight = f
	had := e.tok != ""
	go func() {
		tok, fail := c.fetch(src, k.scope, fresh)
		c.mu.Lock()
		defer c.mu.Unlock()
		defer close(f.done)
		e.flight = nil
		now := c.now()
		if fail != nil {
			f.err = c.fetchError(src, e, fail, had, fresh, now)
			return
		}
		if e.failing {
			c.log.Info("token renewed after failures", "tenant", src.tenant, "scope", k.scope)
		}
		e.failing = false
		e.retryAt = time.Time{}
		if tok.Token == e.tok {
			// A library cache answered with the token we have: ask again
			// later, not on every call.
			e.retryAt = now.Add(renewRetry)
		}
		e.tok, e.exp = tok.Token, tok.ExpiresOn
		if e.exp.IsZero() { // no expires_in: renew after an hour
			e.exp = now.Add(time.Hour)
		}
		e.refresh = e.exp.Add(-refreshEarly)
		if !tok.RefreshOn.IsZero() && tok.RefreshOn.Before(e.refresh) {
			e.refresh = tok.RefreshOn
		}
		f.tok = tok.Token
		c.log.Debug("token acquired", "tenant", src.tenant, "scope", k.scope, "fresh", fresh,
			"expires_in", e.exp.Sub(now).Round(time.Second))
	}()
	return f
}

// fetchError records a failed fetch on e and returns the error its
// waiters get; c.mu is held.
func (c *Credential) fetchError(src *source, e *entry, fail *failure, had, fresh bool, now time.Time) error {
	e.failing = true
	kind := ErrConfig
	if fail.transient {
		kind = ErrUnavailable
	}
	if e.tok != "" && now.Before(e.exp) {
		// Still valid: go on using it, try again a little later.
		e.retryAt = now.Add(min(renewRetry, e.exp.Sub(now)))
		c.log.Warn("token renewal failing; using the current token until it expires",
			"tenant", src.tenant, "expires_in", e.exp.Sub(now).Round(time.Second), "err", fail.msg)
		return &Error{kind: kind, msg: fail.msg}
	}
	switch {
	case fresh:
		return &Error{kind: kind, msg: "renewing the token after a 401: " + fail.msg}
	case had && fail.transient:
		return &Error{kind: kind, msg: fmt.Sprintf("the token for %s expired while the endpoint kept failing: %s", src.tenantDesc(), fail.msg)}
	}
	return &Error{kind: kind, msg: fail.msg}
}
