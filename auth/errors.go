package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The two kinds of failure a caller must tell apart. Every error of this
// package wraps exactly one of them; its text is one line that says what
// to fix and never holds a secret or a token.
var (
	// ErrConfig means a person must fix something: a missing or wrong
	// setting, a secret or certificate Entra refuses, an identity not
	// assigned, a tenant a managed identity cannot serve.
	ErrConfig = errors.New("credential configuration error")
	// ErrUnavailable means the token or identity endpoint stayed down
	// (network errors, 5xx, 429) and no valid token is cached: retry later.
	ErrUnavailable = errors.New("token endpoint unavailable")
)

// Error is an error of this package: a one-line message and its kind
// (ErrConfig or ErrUnavailable).
type Error struct {
	kind error
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Is reports whether target is the kind of e.
func (e *Error) Is(target error) bool { return target == e.kind }

func configErrorf(format string, a ...any) error {
	return &Error{kind: ErrConfig, msg: fmt.Sprintf(format, a...)}
}

var (
	jwtRE    = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}(\.[A-Za-z0-9_\-]*)?`)
	secretRE = regexp.MustCompile(`(?i)(bearer|access_token|client_secret|client_assertion|password)(["'\s:=]+)[^\s"',&]+`)
)

// oneLine makes text from a server or a library safe to show: secrets
// known to the credential removed, anything token-like redacted, one line,
// at most max runes.
func (c *Credential) oneLine(s string, max int) string {
	if len(s) > 1<<16 {
		s = s[:1<<16]
	}
	s = c.redact.Replace(strings.ToValidUTF8(s, ""))
	s = jwtRE.ReplaceAllString(s, "[redacted]")
	s = secretRE.ReplaceAllString(s, "$1$2[redacted]")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if utf8.RuneCountInString(s) > max {
		s = strings.TrimSpace(string([]rune(s)[:max-1])) + "…"
	}
	return s
}

// oauthError reads the error of an Entra, App Service or IMDS answer:
// {"error":"invalid_client","error_description":"AADSTS...\r\nTrace ID..."},
// {"error":{"code":..,"message":..}} or {"message":..}.
func oauthError(body []byte) (code, desc string) {
	var b struct {
		Error   json.RawMessage `json:"error"`
		Desc    string          `json:"error_description"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &b) != nil {
		return "", ""
	}
	if json.Unmarshal(b.Error, &code) != nil {
		var obj struct{ Code, Message string }
		if json.Unmarshal(b.Error, &obj) == nil {
			code, desc = obj.Code, obj.Message
		}
	}
	if b.Desc != "" {
		desc = b.Desc
	} else if desc == "" {
		desc = b.Message
	}
	if i := strings.IndexAny(desc, "\r\n"); i >= 0 {
		desc = desc[:i]
	}
	return code, desc
}

// transientStatus tells whether an endpoint's answer may pass by itself.
// IMDS documents 404 and 410 as retryable too (the identity is still being
// assigned).
func (c *Credential) transientStatus(status int) bool {
	if status >= 500 || status == http.StatusTooManyRequests {
		return true
	}
	return c.cfg.Kind == ManagedIdentity && (status == http.StatusNotFound || status == http.StatusGone)
}

// failure is a classified token fetch failure.
type failure struct {
	transient bool
	msg       string // one line: what failed and what to fix
}

// classify turns a failed fetch from src into a failure, from what the
// transport saw (tr) and the library's error.
func (c *Credential) classify(src *source, tr *trace, err error) failure {
	endpoint := src.endpoint
	if u := tr.lastURL(); u != "" {
		endpoint = u
	}
	status, body, netErr, refused := tr.result()
	switch {
	case refused != "":
		return failure{false, fmt.Sprintf("refused to send a token request to %s: only the token endpoint (%s) and the managed-identity endpoint receive credentials", refused, src.endpoint)}
	case netErr != nil && untrusted(netErr):
		return failure{false, fmt.Sprintf("%s has a TLS certificate this machine does not trust (%s): check --authority-host, or give the private authority's CA with --ca-file",
			endpoint, c.oneLine(netErr.Error(), 200))}
	case netErr != nil:
		return failure{true, fmt.Sprintf("%s unreachable (%s): %s", endpoint, c.oneLine(netErr.Error(), 200), c.hint(src, 0, ""))}
	case status == 0 || status < 300:
		// A local failure, or one after a good answer (an OpenID
		// configuration that does not match the authority, a token file
		// that cannot be read...).
		return failure{false, fmt.Sprintf("%s for %s: %s: %s", c.kindName(), src.tenantDesc(), c.oneLine(firstLine(err.Error()), 300), c.hint(src, -1, ""))}
	}
	code, desc := oauthError(body)
	what := c.oneLine(strings.TrimSpace(code+" "+desc), 160)
	if what != "" {
		what = " " + what
	}
	if status >= 300 && status < 400 {
		what += " (redirect not followed)"
	}
	if c.transientStatus(status) {
		return failure{true, fmt.Sprintf("%s answered HTTP %d%s: %s", endpoint, status, what, c.hint(src, status, code))}
	}
	if status == http.StatusBadRequest || status == http.StatusUnauthorized || code == "invalid_client" || code == "unauthorized_client" {
		return failure{false, fmt.Sprintf("%s refused %s (HTTP %d%s): %s", endpoint, c.who(), status, what, c.hint(src, status, code))}
	}
	return failure{false, fmt.Sprintf("%s answered HTTP %d%s: %s", endpoint, status, what, c.hint(src, 0, ""))}
}

// untrusted tells whether a transport error is a TLS certificate the
// client does not accept: retrying will not change it.
func untrusted(err error) bool {
	var (
		ua  x509.UnknownAuthorityError
		ci  x509.CertificateInvalidError
		he  x509.HostnameError
		cve *tls.CertificateVerificationError
	)
	return errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &he) || errors.As(err, &cve)
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// who names the client a token endpoint refused.
func (c *Credential) who() string {
	if c.cfg.Kind == ManagedIdentity {
		return fmt.Sprintf("managed identity %q", c.cfg.AppID)
	}
	return fmt.Sprintf("app %q", c.cfg.AppID)
}

func (c *Credential) kindName() string {
	switch c.cfg.Kind {
	case Certificate:
		return "certificate credential"
	case ManagedIdentity:
		return "managed identity"
	case WorkloadIdentity:
		return "workload identity"
	}
	return "client secret"
}

// hint says what to check or fix for a failure of src; status is the
// answer's HTTP status (0: none, the endpoint was not reached; -1: a local
// failure of the credential).
func (c *Credential) hint(src *source, status int, code string) string {
	refused := status == http.StatusBadRequest || status == http.StatusUnauthorized || status == -1
	switch {
	case status == 0 && src.tokenURL:
		return "check --token-url, --cloud and the network"
	case status == 0 && c.cfg.Kind == ManagedIdentity:
		return "check that this runs on Azure with the managed identity assigned (IDENTITY_ENDPOINT and IDENTITY_HEADER on App Service, else the instance metadata service)"
	case status == 0:
		return "check --authority-host, --cloud and the network"
	case !refused:
		if src.tokenURL {
			return "check --cloud, --app-tenant and --token-url"
		}
		return "check --cloud, --app-tenant and --authority-host"
	case code == "unauthorized_client" || code == "invalid_tenant" || code == "invalid_request" && c.cfg.Kind != ManagedIdentity:
		return fmt.Sprintf("check --app-id, --app-tenant and that app %q is registered (and consented) in tenant %s", c.cfg.AppID, src.tenant)
	case code == "invalid_scope" || code == "invalid_resource":
		return "check --cloud (the scope or resource is not one this app can get)"
	}
	switch c.cfg.Kind {
	case Certificate:
		return fmt.Sprintf("wrong or expired certificate? upload certificate %s to app %q (Certificates & secrets, or az ad app credential reset --id %s --cert @FILE --append), or point --app-certificate-file at the one uploaded there",
			c.certDesc, c.cfg.AppID, c.cfg.AppID)
	case ManagedIdentity:
		return fmt.Sprintf("check that user-assigned identity %q is assigned to this resource (az webapp identity assign --identities RESOURCE_ID) and that --app-id is its client id", c.cfg.AppID)
	case WorkloadIdentity:
		return fmt.Sprintf("check the federated credential of app %q (issuer = the cluster's OIDC issuer, subject = system:serviceaccount:NAMESPACE:NAME, audience %s) and that %s holds a current service-account token",
			c.cfg.AppID, federatedAudience, c.cfg.FederatedTokenFile)
	}
	return "check --app-id and the app password (wrong or expired secret?)"
}

const federatedAudience = "api://AzureADTokenExchange"
