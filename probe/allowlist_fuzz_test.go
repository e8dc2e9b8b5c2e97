package probe

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzAllowList checks the service-URL allow-list against arbitrary URLs
// and --allow-host lists: it never panics, and whatever it lets through
// (the bearer token would be sent there) is https, or http to a loopback
// host named with --allow-host; has no user info; has a host that is in
// the cloud's list (default port) or the extra list; and still goes to that
// same host once the API path is joined and the URL is printed and parsed
// again, as net/http does.
func FuzzAllowList(f *testing.F) {
	cloudNames := []Cloud{CloudPublic, CloudGCC, CloudGCCH, CloudDoD}
	for _, s := range []struct {
		raw, extra string
		cloud      uint8
	}{
		{"https://smba.trafficmanager.net/amer/", "", 0},
		{"https://smba.trafficmanager.net:443/amer/", "", 0},
		{"https://smba.trafficmanager.net:8443/amer/", "", 0},
		{"https://smba.trafficmanager.net:0443/amer/", "", 0},
		{"https://smba.trafficmanager.net:/amer/", "", 0},
		{"https://SMBA.TrafficManager.NET/amer/", "", 0},
		{"https://smba.trafficmanager.net./amer/", "", 0},
		{"https://smba.trafficmanager.net.evil.example/amer/", "", 0},
		{"https://evil.example/smba.trafficmanager.net/", "", 0},
		{"https://user:pw@smba.trafficmanager.net/amer/", "", 0},
		{"https://@smba.trafficmanager.net/amer/", "", 0},
		{"https://smba.trafficmanager.net\\@evil.example/", "", 0},
		{"https://evil.example#@smba.trafficmanager.net/", "", 0},
		{"https://evil.example?@smba.trafficmanager.net/", "", 0},
		{"https://smba%2Etrafficmanager.net/amer/", "", 0},
		{"https://smba.trafficmanager.net%2F@evil.example/", "", 0},
		{"https://xn--smba-9ta.trafficmanager.net/amer/", "", 0},
		{"https://ｓｍｂａ.trafficmanager.net/amer/", "", 0},
		{"http://smba.trafficmanager.net/amer/", "", 0},
		{"HTTPS://smba.infra.gov.teams.microsoft.us/teams/", "", 2},
		{"https://smba.infra.dod.teams.microsoft.us/teams/", "", 2},
		{"//smba.trafficmanager.net/amer/", "", 0},
		{"ftp://localhost/x/", "localhost", 0},
		{"http://localhost:8080/amer/", "localhost", 0},
		{"http://LOCALHOST.:8080/amer/", "localhost.", 0},
		{"http://127.0.0.1:1/amer/", "127.0.0.1", 0},
		{"http://127.0.0.1:1/amer/", "localhost", 0},
		{"http://[::1]:1/amer/", "[::1]", 0},
		{"http://[::ffff:127.0.0.1]:1/amer/", "::ffff:127.0.0.1", 0},
		{"http://[::1%25eth0]:1/amer/", "::1%eth0", 0},
		{"http://10.0.0.5/x/", "10.0.0.5", 0},
		{"https://10.0.0.5:9999/x/", "10.0.0.5", 0},
		{"https://52.112.0.1/amer/", "", 0},
		{"https://0x7f000001/x/", "127.0.0.1", 0},
		{"http://2130706433/x/", "127.0.0.1", 0},
		{"https://bot.example:8443/x/", " Bot.Example ,other", 0},
		{"https://bot.example/x/", "https://bot.example", 0},
		{"https://bot.example/x/", "bot.example:443", 0},
		{"https://bot.example/x/", "u@bot.example", 0},
		{"https://bot.example/a%2Fb/", "bot.example", 0},
		{" https://smba.trafficmanager.net/amer/ ", "", 0},
		{"https://smba.trafficmanager.net/amer/\x00", "", 0},
		{"https://smba.trafficmanager.net\r\n.evil/", "", 0},
		{"", "", 0},
	} {
		f.Add(s.raw, s.extra, s.cloud)
	}
	f.Fuzz(func(t *testing.T, raw, extra string, cloudN uint8) {
		prof := clouds[cloudNames[int(cloudN)%len(cloudNames)]]
		extras := strings.Split(extra, ",")
		a, err := newAllowList(prof.hosts, extras)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("newAllowList: empty error")
			}
			return
		}
		base, err := serviceBase(raw)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("serviceBase(%q): empty error", raw)
			}
			return
		}
		if err := a.check(base); err != nil {
			if err.Error() == "" {
				t.Fatalf("check(%q): empty error", raw)
			}
			return
		}
		// Allowed: the token would be sent. Check every rule against the
		// lists as given, independently of how allowList stores them.
		named := func(host string) bool {
			return slices.ContainsFunc(extras, func(h string) bool {
				return strings.Trim(strings.ToLower(strings.TrimSpace(h)), "[]") == host
			})
		}
		inCloud := func(u *url.URL) bool {
			return slices.Contains(prof.hosts, strings.ToLower(u.Hostname())) && (u.Port() == "" || u.Port() == "443")
		}
		sent := join(base, "pageSize=1", "v3", "conversations", "a:1;messageid=2", "members", "29:x/../y")
		for _, u := range []*url.URL{base, sent} {
			// What net/http does: print the URL and parse it again.
			s := u.String()
			pu, err := url.Parse(s)
			if err != nil {
				t.Fatalf("%q allowed, but the URL sent (%q) does not parse: %v", raw, s, err)
			}
			host := strings.ToLower(pu.Hostname())
			if pu.User != nil {
				t.Fatalf("%q allowed with user info (sent as %q)", raw, s)
			}
			if host != strings.ToLower(base.Hostname()) {
				t.Fatalf("%q allowed for host %q, but the request goes to %q (%q)", raw, base.Hostname(), host, s)
			}
			switch pu.Scheme {
			case "https":
				if !inCloud(pu) && !named(host) {
					t.Fatalf("%q allowed: host %q (port %q) is in neither the cloud list %v nor %q", raw, host, pu.Port(), prof.hosts, extra)
				}
			case "http":
				if !named(host) || !isLoopback(host) {
					t.Fatalf("%q allowed: plain http to %q, which is not a loopback host named in %q", raw, host, extra)
				}
			default:
				t.Fatalf("%q allowed with scheme %q (sent as %q)", raw, pu.Scheme, s)
			}
			if err := a.check(pu); err != nil {
				t.Fatalf("%q allowed, but the URL sent (%q) is not: %v", raw, s, err)
			}
		}
	})
}
