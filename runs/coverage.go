package runs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/blockreport/blockreport/store"
)

// ErrNoAllowedHost means no reference to be probed points at a host the
// allow-list lets receive the token: a run would only record them invalid.
var ErrNoAllowedHost = errors.New("no service host of the stored references is on the allow-list")

// HostCount is how many references (not opted out) point at one service
// host, and why the allow-list refuses it (nil: allowed).
type HostCount struct {
	Host       string
	References int
	Refused    error
}

// Coverage is the allow-list's verdict on the stored service URLs.
type Coverage struct {
	Hosts            []HostCount // refused hosts first, then by references
	Allowed, Refused int         // references
}

// RefusedHosts returns the hosts the allow-list refuses.
func (c Coverage) RefusedHosts() []HostCount {
	var out []HostCount
	for _, h := range c.Hosts {
		if h.Refused != nil {
			out = append(out, h)
		}
	}
	return out
}

// Err is ErrNoAllowedHost, naming the refused hosts, when references would
// be probed but none of them may be; else nil.
func (c Coverage) Err() error {
	if c.Allowed > 0 || c.Refused == 0 {
		return nil
	}
	var names []string
	for i, h := range c.RefusedHosts() {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(c.RefusedHosts())-5))
			break
		}
		names = append(names, fmt.Sprintf("%s (%d references)", h.Host, h.References))
	}
	return fmt.Errorf("%w: %s", ErrNoAllowedHost, strings.Join(names, ", "))
}

// CheckCoverage groups the stored references (not opted out) by service
// host and asks check, the probe's allow-list (probe.Prober.CheckServiceURL),
// about each service URL. It reads the store only.
func CheckCoverage(ctx context.Context, db *store.DB, check func(serviceURL string) error) (Coverage, error) {
	urls, err := db.ServiceURLs(ctx)
	if err != nil {
		return Coverage{}, err
	}
	byHost := map[string]*HostCount{}
	var c Coverage
	for _, u := range urls {
		err := check(u.URL)
		host := hostOf(u.URL)
		h := byHost[host]
		if h == nil {
			h = &HostCount{Host: host}
			byHost[host] = h
		}
		h.References += u.References
		if err != nil {
			if h.Refused == nil {
				h.Refused = err
			}
			c.Refused += u.References
		} else {
			c.Allowed += u.References
		}
	}
	for _, h := range byHost {
		c.Hosts = append(c.Hosts, *h)
	}
	sort.Slice(c.Hosts, func(i, j int) bool {
		a, b := c.Hosts[i], c.Hosts[j]
		if (a.Refused != nil) != (b.Refused != nil) {
			return a.Refused != nil
		}
		if a.References != b.References {
			return a.References > b.References
		}
		return a.Host < b.Host
	})
	return c, nil
}

// hostOf names the host of a service URL for people: its host, or the
// reason it has none.
func hostOf(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "(unparsable service URL)"
	}
	if u.Scheme != "https" {
		return u.Scheme + "://" + u.Host
	}
	return u.Host
}
