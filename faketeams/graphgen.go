package faketeams

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// GraphOptions describe the Graph side of a generated population. Shares
// are fractions (0.3 = 30 %).
type GraphOptions struct {
	Seed uint64
	// WritesBlockedUninstalled is the share of blocked users answering
	// MessageWritesBlocked who in fact uninstalled the app (Graph: not
	// installed); the others blocked it and still have it installed.
	WritesBlockedUninstalled float64
	// Stale is the share of uninstalled and not-found conversations whose
	// user still has the app installed: the stored conversation is stale
	// and the installation's chat answers.
	Stale float64
	// Left is the share of personal users the directory no longer has;
	// Disabled the share whose account is disabled.
	Left, Disabled float64
	// NeverInstalled and InstalledNoReference add directory users without
	// a stored reference, as shares of the population's personal users:
	// who never installed the app, and who installed it while the bot
	// stored nothing.
	NeverInstalled, InstalledNoReference float64
	// NoConsent and NoServicePrincipal are how many tenants (the last
	// ones, in the population's order) have no admin consent, or no
	// service principal of the app.
	NoConsent, NoServicePrincipal int
}

// GenerateGraph returns a Graph consistent with pop: blocked users still
// have the app installed (unless WritesBlockedUninstalled says they
// uninstalled it), uninstalled ones do not (unless Stale), a share of the
// directory never installed it and a share installed it without a stored
// reference. Tenants are named after their users' mail domain. The same
// options give the same Graph.
func GenerateGraph(pop []Conversation, o GraphOptions) Graph {
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x2545f4914f6cdd1d))
	g := Graph{Enabled: true, Installed: map[string]bool{}}
	var tenants []string
	domain := map[string]string{}
	var personal []Conversation
	for _, c := range pop {
		if _, ok := domain[c.TenantID]; !ok {
			tenants = append(tenants, c.TenantID)
			domain[c.TenantID] = ""
		}
		if d := domain[c.TenantID]; d == "" && c.Email != "" {
			if _, at, ok := strings.Cut(c.Email, "@"); ok {
				domain[c.TenantID] = at
			}
		}
		if c.ConversationType == blockreport.ConversationPersonal && c.AADObjectID != "" {
			personal = append(personal, c)
		}
	}
	for i, t := range tenants {
		gt := GraphTenant{ID: t, Name: orgName(domain[t])}
		switch n := len(tenants) - i; {
		case n <= o.NoServicePrincipal:
			gt.NoServicePrincipal = true
		case n <= o.NoServicePrincipal+o.NoConsent:
			gt.NoConsent = true
		}
		g.Tenants = append(g.Tenants, gt)
	}
	for _, c := range personal {
		switch {
		case c.State == StateBlocked && c.BlockShape != BlockEnvelope && c.BlockShape != "" && rng.Float64() < o.WritesBlockedUninstalled:
			g.Installed[c.AADObjectID] = false
		case stale(c.State) && rng.Float64() < o.Stale:
			g.Installed[c.AADObjectID] = true
		}
		switch r := rng.Float64(); {
		case r < o.Left:
			g.Left = append(g.Left, c.AADObjectID)
		case r < o.Left+o.Disabled:
			g.Disabled = append(g.Disabled, c.AADObjectID)
		}
	}
	extra := func(share float64, installed bool, label string) {
		n := int(math.Round(share * float64(len(personal))))
		for i := range n {
			t := tenants[rng.IntN(len(tenants))]
			first := firstNames[rng.IntN(len(firstNames))]
			last := lastNames[rng.IntN(len(lastNames))]
			fd, fa, _ := strings.Cut(first, "|")
			ld, la, _ := strings.Cut(last, "|")
			id := guid(rng)
			mail := fmt.Sprintf("%s.%s.%s%d@%s", fa, la, label, i, domain[t])
			g.Users = append(g.Users, DirectoryUser{
				TenantID: t, ID: id, DisplayName: fd + " " + ld, UPN: mail, Mail: mail,
				Department: pick(departments, id, "d"), JobTitle: pick(jobTitles, id, "j"),
				OfficeLocation: pick(offices, id, "o"), Country: pick(countries, id, "c"),
				UserType: "Member", Installed: installed,
			})
		}
	}
	extra(o.NeverInstalled, false, "n")
	extra(o.InstalledNoReference, true, "i")
	return g
}

// orgName makes an organization name of a mail domain: "contoso.example"
// → "Contoso".
func orgName(domain string) string {
	name, _, _ := strings.Cut(domain, ".")
	if name == "" {
		return ""
	}
	return strings.ToUpper(name[:1]) + name[1:]
}
