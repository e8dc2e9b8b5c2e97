package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/store"
)

// TestRunWithGraph: "blockreport run --teams-app-id" against faketeams
// with Graph: the run finishes (exit 0) although one tenant is not
// consented, that tenant is named once on stderr and in the report's
// notes, the report carries Graph's summary and tenant names, and no token
// reached the wrong audience (the fakes answer 401 to that, which would
// fail the run).
func TestRunWithGraph(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 60, Tenants: 2, Seed: 7, Blocked: 0.2, Uninstalled: 0.1, Deleted: 0.05})
	tenants := map[string]bool{}
	for _, c := range pop {
		tenants[c.TenantID] = true
	}
	var ids []string
	for id := range tenants {
		ids = append(ids, id)
	}
	if ids[0] > ids[1] {
		ids[0], ids[1] = ids[1], ids[0]
	}
	fake := startFake(t, faketeams.Config{Population: pop, Limits: faketeams.NoLimits(), Graph: faketeams.Graph{Enabled: true,
		Tenants: []faketeams.GraphTenant{{ID: ids[0], Name: "Contoso Ltd"}, {ID: ids[1], Name: "Fabrikam", NoConsent: true}},
		Users: []faketeams.DirectoryUser{
			{TenantID: ids[0], ID: "eeeeeeee-0000-4000-8000-000000000001", DisplayName: "Nina Never", Department: "Legal"},
			{TenantID: ids[0], ID: "eeeeeeee-0000-4000-8000-000000000002", DisplayName: "Ines Installed", Department: "Sales", Installed: true},
		}}})
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "b.db")
	openSeeded(t, dbURL, fake.References())
	out := filepath.Join(dir, "out")
	stdout, stderr, code := runRunCmd(t, probeEnv(fake, dbURL, nil), "--out", out,
		"--teams-app-id", faketeams.DefaultManifestID, "--graph-url", fake.GraphURL(), "--coverage")
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if n := strings.Count(stderr, "Microsoft Graph unavailable for a tenant"); n != 1 || !strings.Contains(stderr, ids[1]) {
		t.Errorf("stderr names %d unavailable tenants, want the unconsented one once:\n%s", n, stderr)
	}
	var html string
	for _, p := range reportFiles(t, out) {
		if strings.HasSuffix(p, ".html") {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			html = string(b)
		}
	}
	for _, want := range []string{"Microsoft Graph checked", "Contoso Ltd", "Graph unavailable for tenant", "By department", "Installed (Graph)",
		"enabled users in Contoso Ltd can be reached", "Nina Never", `id="coverage"`} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	st := fake.Stats()
	if n := st.Count(faketeams.RouteSendActivity, "401"); n != 0 {
		t.Errorf("the connector answered 401 %d times: a Graph token reached it", n)
	}
	for _, it := range fake.IssuedTokens() {
		wantAud := strings.TrimSuffix(fake.GraphScope(), "/.default")
		if it.Tenant == "botframework.com" {
			wantAud = faketeams.ConnectorAudience
		}
		if it.Audience != wantAud {
			t.Errorf("token for tenant %s has audience %s, want %s", it.Tenant, it.Audience, wantAud)
		}
	}
	if st.Total(faketeams.RouteGraphBatch) == 0 {
		t.Error("Graph was never asked")
	}
	db, err := store.Open(context.Background(), dbURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	run, err := db.LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	err = db.Rows(context.Background(), run.ID, func(r blockreport.Row) error {
		if r.UserName == "Ines Installed" {
			found = r.Status == blockreport.StatusReachable
		}
		return nil
	})
	if err != nil || !found {
		t.Errorf("the user who installed the app without a reference was not probed reachable in the run (%v)", err)
	}
}
