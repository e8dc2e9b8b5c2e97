package auth

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// cloudLogin is where a cloud's tokens come from. Sources (auth.md §2.2,
// teams-api.md §5): bot-docs rest-api/bot-framework-rest-connector-authentication.md
// and how-to-deploy-gov-cloud-high.md; botbuilder-js authenticationConstants.ts
// and governmentConstants.ts; azcore cloud.AzurePublic / AzureGovernment.
// GCC (moderate) uses the public login (microsoft/teams.ts cloud-environment.ts; inference).
type cloudLogin struct {
	authority string // Entra login host, https with a trailing slash
	botTenant string // tenant of a multi-tenant bot's connector token
}

var clouds = map[blockreport.Cloud]cloudLogin{
	blockreport.CloudPublic: {"https://login.microsoftonline.com/", "botframework.com"},
	blockreport.CloudGCC:    {"https://login.microsoftonline.com/", "botframework.com"},
	blockreport.CloudGCCH:   {"https://login.microsoftonline.us/", "MicrosoftServices.onmicrosoft.us"},
	blockreport.CloudDoD:    {"https://login.microsoftonline.us/", "MicrosoftServices.onmicrosoft.us"},
}

func login(c blockreport.Cloud) (cloudLogin, error) {
	if c == "" {
		c = blockreport.CloudPublic
	}
	l, ok := clouds[c]
	if !ok {
		return cloudLogin{}, configErrorf("unknown cloud %q: want public, gcc, gcch or dod", c)
	}
	return l, nil
}

// knownAuthority tells whether host is one of the clouds' login hosts:
// MSAL may then ask it for instance metadata; any other authority is used
// as given (instance discovery off), so nothing goes to Microsoft's
// servers for a private or test authority.
func knownAuthority(host string) bool {
	for _, l := range clouds {
		if strings.EqualFold(strings.TrimSuffix(l.authority, "/"), strings.TrimSuffix(host, "/")) {
			return true
		}
	}
	return false
}

// TokenURL is the client-credentials endpoint of cloud for appTenant ("":
// a multi-tenant bot, whose connector token comes from the cloud's
// botframework.com tenant).
func TokenURL(cloud blockreport.Cloud, appTenant string) (string, error) {
	l, err := login(cloud)
	if err != nil {
		return "", err
	}
	t := appTenant
	if t == "" {
		t = l.botTenant
	}
	return l.authority + url.PathEscape(t) + "/oauth2/v2.0/token", nil
}

// CheckAuthorityHost returns nil when host may serve as the Entra authority
// host: an absolute https URL without user info, query or fragment
// (Microsoft's libraries refuse anything but https).
func CheckAuthorityHost(host string) error {
	u, err := url.Parse(strings.TrimSpace(host))
	switch {
	case err != nil:
		return errors.New("authority host does not parse")
	case u.Scheme != "https":
		return fmt.Errorf("authority host scheme %q: want https (the token service is never used over plain http)", u.Scheme)
	case u.Host == "" || u.Opaque != "":
		return errors.New("authority host is not an absolute URL")
	case u.User != nil:
		return errors.New("authority host carries user info")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("authority host has a query or fragment")
	}
	return nil
}

// CheckTokenURL returns nil when tokenURL may receive the app secret: an
// absolute https URL, or plain http to a loopback host (127.0.0.0/8, ::1,
// localhost), without user info. Anything else would send the secret in
// plain text or to an unintended place.
func CheckTokenURL(tokenURL string) error {
	u, err := url.Parse(strings.TrimSpace(tokenURL))
	if err != nil {
		return errors.New("token URL does not parse")
	}
	if u.Host == "" || u.Opaque != "" {
		return errors.New("token URL is not an absolute URL")
	}
	if u.User != nil {
		return errors.New("token URL carries user info")
	}
	host := strings.ToLower(u.Hostname())
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if isLoopback(host) {
			return nil
		}
		return fmt.Errorf("token URL host %q: plain http would send the app secret in clear text; want https (http only for loopback hosts)", host)
	}
	return fmt.Errorf("token URL scheme %q: want https", u.Scheme)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
