package faketeams

import (
	"net/http"
	"strconv"
	"strings"
)

// The simulated managed-identity endpoints:
// App Service / Functions (IDENTITY_ENDPOINT + IDENTITY_HEADER) and the
// instance metadata service (IMDS, reached through a test transport).
const (
	identityPath = "/msi/token"
	imdsPath     = "/metadata/identity/oauth2/token"
)

// IdentityEndpoint is the App Service-style managed-identity endpoint, to
// put in IDENTITY_ENDPOINT (plain http on loopback, as App Service has it).
func (s *Server) IdentityEndpoint() string { return s.url + identityPath }

// IdentityHeader is the value IDENTITY_HEADER must hold.
func (s *Server) IdentityHeader() string { return s.entra.header }

// IMDSPath is the path of the simulated IMDS token route; a test transport
// sends requests for 169.254.169.254 here.
const IMDSPath = imdsPath

// serveIdentity answers a managed-identity token request: GET with
// api-version, resource and the user-assigned identity's client_id, and
// X-IDENTITY-HEADER (App Service) or Metadata: true (IMDS).
func (s *Server) serveIdentity(w http.ResponseWriter, r *http.Request, imds bool) {
	fail := func(status int, code, desc string) {
		s.jsonReply(w, RouteIdentity, status, map[string]any{"statusCode": status, "error": code, "error_description": desc, "message": desc})
	}
	q := r.URL.Query()
	wantVersion := "2019-08-01"
	if imds {
		wantVersion = "2018-02-01"
	}
	switch {
	case r.Method != http.MethodGet:
		fail(http.StatusMethodNotAllowed, "invalid_request", "Only GET is supported.")
		return
	case imds && r.Header.Get("Metadata") != "true":
		fail(http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return
	case !imds && r.Header.Get("X-IDENTITY-HEADER") != s.entra.header:
		fail(http.StatusUnauthorized, "unauthorized", "X-IDENTITY-HEADER is missing or does not match.")
		return
	case q.Get("api-version") != wantVersion:
		fail(http.StatusBadRequest, "invalid_request", "api-version must be "+wantVersion+".")
		return
	}
	resource := q.Get("resource")
	id := q.Get("client_id")
	switch {
	case resource == "":
		fail(http.StatusBadRequest, "invalid_request", "Required query variable 'resource' is missing.")
		return
	case id == "":
		fail(http.StatusBadRequest, "invalid_request", "No system-assigned managed identity is enabled on this resource.")
		return
	case id != s.cfg.Entra.IdentityClientID:
		fail(http.StatusBadRequest, "invalid_request", "Identity not found: no user-assigned managed identity with this client_id is assigned to this resource.")
		return
	case !s.entra.scopes[strings.TrimSuffix(resource, "/")+"/.default"]:
		fail(http.StatusBadRequest, "invalid_resource", "AADSTS500011: The resource principal named "+resource+" was not found in the tenant.")
		return
	}
	tok, ttl := s.issue(IssuedToken{Tenant: s.cfg.Entra.IdentityTenant, Audience: strings.TrimSuffix(resource, "/"), AppID: id, Credential: CredentialManagedIdentity})
	now := s.cfg.Now()
	body := map[string]any{
		"access_token": tok,
		"expires_on":   strconv.FormatInt(now.Unix()+int64(ttl), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    id,
	}
	if imds {
		body["expires_in"] = strconv.Itoa(ttl)
		body["not_before"] = strconv.FormatInt(now.Unix(), 10)
		body["refresh_token"] = ""
	}
	s.jsonReply(w, RouteIdentity, http.StatusOK, body)
}
