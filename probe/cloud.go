package probe

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// Cloud is the Microsoft cloud a bot runs in (blockreport.Cloud).
type Cloud = blockreport.Cloud

// The supported clouds.
const (
	CloudPublic = blockreport.CloudPublic
	CloudGCC    = blockreport.CloudGCC
	CloudGCCH   = blockreport.CloudGCCH
	CloudDoD    = blockreport.CloudDoD
)

// cloudProfile is everything that differs between clouds.
type cloudProfile struct {
	scope         string   // of the connector token
	hosts         []string // Bot Connector hosts that may receive the token (https only)
	gccServiceURL string   // where a 403 InvalidBotApiHost is retried
}

// clouds is the single table of cloud facts. Sources (teams-api.md §5):
//   - scopes: bot-docs rest-api/bot-framework-rest-connector-authentication.md,
//     how-to-deploy-gov-cloud-high.md, botbuilder-js authenticationConstants.ts and governmentConstants.ts;
//     GCC (moderate) uses the public login and scope (microsoft/teams.ts cloud-environment.ts; inference).
//   - hosts: the allow-lists of microsoft/teams.ts packages/api/src/auth/cloud-environment.ts and
//     microsoft/teams.net CloudEnvironment.cs (Public includes the GCC host).
//   - GCC service URL: msteams-docs send-proactive-messages.md ("global service URLs") and the
//     InvalidBotApiHost message in the status-code table.
var clouds = map[Cloud]cloudProfile{
	CloudPublic: {
		scope:         "https://api.botframework.com/.default",
		hosts:         []string{"smba.trafficmanager.net", "smba.onyx.prod.teams.trafficmanager.net", "smba.infra.gcc.teams.microsoft.com"},
		gccServiceURL: "https://smba.infra.gcc.teams.microsoft.com/teams/",
	},
	CloudGCC: {
		scope:         "https://api.botframework.com/.default",
		hosts:         []string{"smba.infra.gcc.teams.microsoft.com", "smba.trafficmanager.net", "smba.onyx.prod.teams.trafficmanager.net"},
		gccServiceURL: "https://smba.infra.gcc.teams.microsoft.com/teams/",
	},
	CloudGCCH: {
		scope: "https://api.botframework.us/.default",
		hosts: []string{"smba.infra.gov.teams.microsoft.us"},
	},
	CloudDoD: {
		scope: "https://api.botframework.us/.default",
		hosts: []string{"smba.infra.dod.teams.microsoft.us"},
	},
}

func profile(c Cloud) (cloudProfile, error) {
	if c == "" {
		c = CloudPublic
	}
	p, ok := clouds[c]
	if !ok {
		return cloudProfile{}, fmt.Errorf("unknown cloud %q: want public, gcc, gcch or dod", c)
	}
	return p, nil
}

// allowList decides which service URLs may receive the bearer token.
type allowList struct {
	cloud map[string]bool // https, default port only
	extra map[string]bool // --allow-host: any port; plain http if loopback
}

func newAllowList(cloudHosts, extra []string) (allowList, error) {
	a := allowList{cloud: map[string]bool{}, extra: map[string]bool{}}
	for _, h := range cloudHosts {
		a.cloud[strings.ToLower(h)] = true
	}
	for _, h := range extra {
		h = strings.Trim(strings.ToLower(strings.TrimSpace(h)), "[]")
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, "/:@ ") && net.ParseIP(h) == nil {
			return allowList{}, fmt.Errorf("allowed host %q: want a host name or IP address without scheme, port or path", h)
		}
		a.extra[h] = true
	}
	return a, nil
}

// check returns nil when u may receive the token: exact host match, https
// (or http to a loopback host named with --allow-host), no user info.
func (a allowList) check(u *url.URL) error {
	if u.User != nil {
		return fmt.Errorf("service URL carries user info")
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	switch u.Scheme {
	case "https":
		if a.extra[host] || (a.cloud[host] && (port == "" || port == "443")) {
			return nil
		}
	case "http":
		if a.extra[host] && isLoopback(host) {
			return nil
		}
		if a.extra[host] || a.cloud[host] {
			return fmt.Errorf("service URL host %q: plain http is allowed only for loopback hosts", host)
		}
	default:
		return fmt.Errorf("service URL scheme %q: want https", u.Scheme)
	}
	return fmt.Errorf("service URL host %q is not in the allow-list of this cloud (add it with --allow-host if it is yours)", host)
}

// checkServiceURL is check for a raw service URL, which must parse.
func (a allowList) checkServiceURL(raw string) error {
	u, err := serviceBase(raw)
	if err != nil {
		return err
	}
	return a.check(u)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
