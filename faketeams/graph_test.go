package faketeams

import (
	"testing"

	blockreport "github.com/blockreport/blockreport"
)

// TestGenerateGraphConsistent: a generated Graph agrees with the
// population: blocked users have the app installed (but the share that
// uninstalled it behind MessageWritesBlocked), uninstalled ones do not
// (but the stale share), the directory has users without references both
// ways, and SetState moves the installation along.
func TestGenerateGraphConsistent(t *testing.T) {
	pop := Generate(GenerateOptions{Users: 600, Tenants: 3, Seed: 3, Blocked: 0.2, Uninstalled: 0.2, Deleted: 0.05})
	g := GenerateGraph(pop, GraphOptions{Seed: 3, WritesBlockedUninstalled: 0.5, Stale: 0.25, Left: 0.02, Disabled: 0.02,
		NeverInstalled: 0.3, InstalledNoReference: 0.05, NoConsent: 1})
	s, err := Start(Config{Population: pop, Graph: g})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	installed := map[string]bool{}
	var never, noRef int
	byAAD := map[string]Conversation{}
	for _, c := range pop {
		byAAD[c.AADObjectID] = c
	}
	for _, u := range s.GraphUsers() {
		installed[u.ID] = u.Installed
		if _, ok := byAAD[u.ID]; !ok {
			if u.Installed {
				noRef++
			} else {
				never++
			}
		}
	}
	var blockedIn, blockedOut, uninstIn, uninstOut int
	for _, c := range pop {
		if c.ConversationType != blockreport.ConversationPersonal {
			continue
		}
		in, ok := installed[c.AADObjectID]
		if !ok {
			continue // left
		}
		switch {
		case c.State == StateBlocked && c.BlockShape == BlockEnvelope && !in:
			t.Errorf("%s blocked by user but not installed", c.AADObjectID)
		case c.State == StateBlocked && in:
			blockedIn++
		case c.State == StateBlocked:
			blockedOut++
		case stale(c.State) && in:
			uninstIn++
		case stale(c.State):
			uninstOut++
		case c.State == StateActive && !in:
			t.Errorf("%s active but not installed", c.AADObjectID)
		}
	}
	if blockedIn == 0 || blockedOut == 0 || uninstIn == 0 || uninstOut <= uninstIn || never == 0 || noRef == 0 {
		t.Errorf("blocked in/out %d/%d, uninstalled in/out %d/%d, never %d, no reference %d", blockedIn, blockedOut, uninstIn, uninstOut, never, noRef)
	}
	if g.Tenants[2].NoConsent != true || g.Tenants[0].Name == "" {
		t.Errorf("tenants %+v", g.Tenants)
	}
	// SetState moves Graph along: an active user who uninstalls is no
	// longer installed.
	for _, c := range pop {
		if c.State == StateActive && c.ConversationType == blockreport.ConversationPersonal {
			if _, fixed := g.Installed[c.AADObjectID]; fixed || s.ChatID(c.TenantID, c.AADObjectID) == "" {
				continue
			}
			s.SetState(c.ConversationID, StateUninstalled)
			if s.ChatID(c.TenantID, c.AADObjectID) != "" {
				t.Error("an uninstalled user still has the app installed")
			}
			break
		}
	}
}
