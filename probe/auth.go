package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ErrToken is wrapped by every failure to get a token from the token
// endpoint that a person has to fix (wrong secret, wrong URL, no token at
// start): a configuration problem that stops the run before any probe.
var ErrToken = errors.New("no Bot Connector token")

const (
	// refreshEarly is how long before expiry the shared token is replaced,
	// so that no request goes out with a token about to expire.
	refreshEarly = 5 * time.Minute
	// tokenAttempts bounds the quick retries of a transient token endpoint
	// failure (network error, 5xx, 429), tokenBackoff doubling in between.
	tokenAttempts = 3
	tokenBackoff  = 200 * time.Millisecond
	// renewRetry is how long workers keep using a still valid token after a
	// failed renewal before the endpoint is tried again.
	renewRetry = 15 * time.Second
)

// tokens is the one token source shared by every worker. It caches the
// token and renews it refreshEarly before expiry; while the token endpoint
// fails transiently, the cached token is used as long as it is valid.
type tokens struct {
	src      oauth2.TokenSource // fetches a fresh token on every call
	url      string
	appID    string
	redactor *strings.Replacer // removes the secret from any error text
	log      *slog.Logger
	now      func() time.Time // wall clock; tests move it
	pause    func(time.Duration)

	mu      sync.Mutex
	cur     *oauth2.Token
	retryAt time.Time // no renewal attempt before this, after a failed one
}

func newTokens(ctx context.Context, appID, secret, tokenURL, scope string, client *http.Client, log *slog.Logger) *tokens {
	cc := &clientcredentials.Config{
		ClientID:     appID,
		ClientSecret: secret,
		TokenURL:     tokenURL,
		Scopes:       []string{scope},
		// Microsoft documents the form-body style; auto-detection would
		// send the secret twice on a failure.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	// The token must stay obtainable during the shutdown grace period, so
	// its context does not inherit the run's cancellation.
	ctx = context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, client)
	r := strings.NewReplacer("[redacted]", "[redacted]")
	if secret != "" {
		r = strings.NewReplacer(secret, "[redacted]")
	}
	return &tokens{
		src:      fetcher{ctx, cc},
		url:      tokenURL,
		appID:    appID,
		redactor: r,
		log:      log,
		now:      time.Now,
		pause:    time.Sleep,
	}
}

// fetcher fetches a fresh token on every call.
type fetcher struct {
	ctx context.Context
	cc  *clientcredentials.Config
}

func (f fetcher) Token() (*oauth2.Token, error) { return f.cc.Token(f.ctx) }

// token returns a valid access token or an error that says what to fix and
// never contains the secret or a token. A transient token endpoint failure
// is an error only once the cached token expired (or at start, when there
// is none); after expiry it wraps ErrInterrupted, so the run can resume.
func (t *tokens) token() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.cur != nil && now.Before(t.cur.Expiry.Add(-refreshEarly)) {
		return t.cur.AccessToken, nil
	}
	valid := t.cur != nil && now.Before(t.cur.Expiry)
	if valid && now.Before(t.retryAt) {
		return t.cur.AccessToken, nil
	}
	tok, err := t.fetch()
	if err == nil {
		if tok.AccessToken == "" {
			return "", fmt.Errorf("%w: token endpoint %s answered without an access token", ErrToken, t.url)
		}
		if tok.Expiry.IsZero() { // no expires_in: renew after an hour
			tok.Expiry = t.now().Add(time.Hour)
		}
		if t.cur != nil && !t.retryAt.IsZero() {
			t.log.Info("token renewed after failures", "token_url", t.url)
		}
		t.cur, t.retryAt = tok, time.Time{}
		return tok.AccessToken, nil
	}
	if !transient(err) {
		return "", t.describe(err)
	}
	switch {
	case valid:
		t.retryAt = now.Add(min(renewRetry, t.cur.Expiry.Sub(now)))
		t.log.Warn("token renewal failing; using the current token until it expires",
			"token_url", t.url, "expires_in", t.cur.Expiry.Sub(now).Round(time.Second), "err", t.describe(err))
		return t.cur.AccessToken, nil
	case t.cur != nil:
		what := strings.TrimPrefix(t.describe(err).Error(), ErrToken.Error()+": ")
		return "", fmt.Errorf("the token expired while the token endpoint kept failing, the run stops (%w): %s", ErrInterrupted, what)
	}
	return "", t.describe(err)
}

// fetch gets a new token, retrying transient failures a few times with a
// short backoff.
func (t *tokens) fetch() (*oauth2.Token, error) {
	d := tokenBackoff
	for n := 1; ; n++ {
		tok, err := t.src.Token()
		if err == nil || !transient(err) || n >= tokenAttempts {
			return tok, err
		}
		t.pause(d)
		d *= 2
	}
}

// transient tells whether a token endpoint failure may pass by itself: a
// network error, a 5xx or a 429. Any other answer (400, 401, 404...) will
// not change without a fix.
func transient(err error) bool {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return true
	}
	if re.Response == nil {
		return false
	}
	s := re.Response.StatusCode
	return s >= 500 || s == http.StatusTooManyRequests
}

// describe turns a token endpoint failure into an error wrapping ErrToken
// that says what to fix, without the secret.
func (t *tokens) describe(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		what := sanitize(t.redactor.Replace(strings.TrimSpace(re.ErrorCode+" "+firstLine(re.ErrorDescription))), 160)
		if what != "" {
			what = ": " + what
		}
		switch {
		case status == 400 || status == 401 || re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client":
			return fmt.Errorf("%w: token endpoint %s refused app %q (HTTP %d%s): check --app-id and the app password (wrong or expired secret?)",
				ErrToken, t.url, t.appID, status, what)
		default:
			return fmt.Errorf("%w: token endpoint %s answered HTTP %d%s: check --cloud, --app-tenant and --token-url",
				ErrToken, t.url, status, what)
		}
	}
	msg := sanitize(t.redactor.Replace(err.Error()), 300)
	return fmt.Errorf("%w: token endpoint %s unreachable (%s): check --token-url, --cloud and the network", ErrToken, t.url, msg)
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}
