package probe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ErrToken is wrapped by every failure to get a token from the token
// endpoint: a configuration problem that stops the run before any probe.
var ErrToken = errors.New("no Bot Connector token")

// refreshEarly is how long before expiry the shared token is replaced, so
// that no request goes out with a token about to expire.
const refreshEarly = 5 * time.Minute

// tokens is the one token source shared by every worker.
type tokens struct {
	ts       oauth2.TokenSource
	url      string
	appID    string
	redactor *strings.Replacer // removes the secret from any error text
}

func newTokens(ctx context.Context, appID, secret, tokenURL, scope string, client *http.Client) *tokens {
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
		ts:       oauth2.ReuseTokenSourceWithExpiry(nil, fetcher{ctx, cc}, refreshEarly),
		url:      tokenURL,
		appID:    appID,
		redactor: r,
	}
}

// fetcher fetches a fresh token on every call; ReuseTokenSourceWithExpiry
// caches it and calls again refreshEarly before expiry.
type fetcher struct {
	ctx context.Context
	cc  *clientcredentials.Config
}

func (f fetcher) Token() (*oauth2.Token, error) { return f.cc.Token(f.ctx) }

// token returns a valid access token or an error that says what to fix and
// never contains the secret or a token.
func (t *tokens) token() (string, error) {
	tok, err := t.ts.Token()
	if err == nil {
		if tok.AccessToken == "" {
			return "", fmt.Errorf("%w: token endpoint %s answered without an access token", ErrToken, t.url)
		}
		return tok.AccessToken, nil
	}
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
			return "", fmt.Errorf("%w: token endpoint %s refused app %q (HTTP %d%s): check --app-id and the app password (wrong or expired secret?)",
				ErrToken, t.url, t.appID, status, what)
		default:
			return "", fmt.Errorf("%w: token endpoint %s answered HTTP %d%s: check --cloud, --app-tenant and --token-url",
				ErrToken, t.url, status, what)
		}
	}
	msg := sanitize(t.redactor.Replace(err.Error()), 300)
	return "", fmt.Errorf("%w: token endpoint %s unreachable (%s): check --token-url, --cloud and the network", ErrToken, t.url, msg)
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}
