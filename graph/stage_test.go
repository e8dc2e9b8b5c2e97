package graph_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/graph"
	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/runs"
	"github.com/blockreport/blockreport/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	tenantA    = "aaaaaaaa-0000-4000-8000-00000000000a"
	tenantNoSP = "cccccccc-0000-4000-8000-00000000000c"
	tenantNoCo = "dddddddd-0000-4000-8000-00000000000d"
)

// verdictCase is one user of the population and what the run must make
// of them.
type verdictCase struct {
	name      string
	tenant    string
	state     faketeams.State
	shape     faketeams.BlockShape
	installed *bool // nil: faketeams' default for the state
	left      bool
	disabled  bool

	status    blockreport.Status
	graph     blockreport.Installed
	outcome   blockreport.GraphOutcome
	connector blockreport.Status // the connector-only status when Graph changed it
	note      string             // part of the check's note
	account   string
}

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

var verdictCases = []verdictCase{
	{name: "reachable", state: faketeams.StateActive, status: blockreport.StatusReachable, graph: "yes", outcome: "confirmed", account: "enabled"},
	{name: "reachable not installed", state: faketeams.StateActive, installed: no(), status: blockreport.StatusReachable, graph: "no", outcome: "noted", note: "connector accepted"},
	{name: "writes blocked installed", state: faketeams.StateBlocked, shape: faketeams.BlockTeamsCRLF, status: blockreport.StatusBlocked, graph: "yes", outcome: "confirmed"},
	{name: "writes blocked uninstalled", state: faketeams.StateBlocked, shape: faketeams.BlockTeamsLF, installed: no(), status: blockreport.StatusUninstalled, graph: "no", outcome: "changed", connector: blockreport.StatusBlocked},
	{name: "blocked by user not installed", state: faketeams.StateBlocked, shape: faketeams.BlockEnvelope, installed: no(), status: blockreport.StatusBlocked, graph: "no", outcome: "noted", note: "also not installed"},
	{name: "codeless 403 installed", state: faketeams.StateForbiddenEmpty, status: blockreport.StatusBlocked, graph: "yes", outcome: "changed", connector: blockreport.StatusForbidden},
	{name: "codeless 403 not installed", state: faketeams.StateForbiddenEmpty, installed: no(), status: blockreport.StatusUninstalled, graph: "no", outcome: "changed", connector: blockreport.StatusForbidden},
	{name: "uninstalled", state: faketeams.StateUninstalled, status: blockreport.StatusUninstalled, graph: "no", outcome: "confirmed"},
	{name: "stale roster", state: faketeams.StateUninstalled, installed: yes(), status: blockreport.StatusReachable, graph: "yes", outcome: "relinked", connector: blockreport.StatusUninstalled},
	{name: "stale not found", state: faketeams.StateDeleted, installed: yes(), status: blockreport.StatusReachable, graph: "yes", outcome: "relinked", connector: blockreport.StatusNotFound},
	{name: "not found", state: faketeams.StateDeleted, status: blockreport.StatusNotFound, graph: "no", outcome: "confirmed"},
	{name: "admin disabled", state: faketeams.StateAdminDisabled, status: blockreport.StatusAdminDisabled, graph: "yes", outcome: "confirmed"},
	{name: "left", state: faketeams.StateUninstalled, left: true, status: blockreport.StatusUninstalled, graph: "unknown", outcome: "unknown", note: "not in directory", account: "not in directory"},
	{name: "disabled account", state: faketeams.StateBlocked, shape: faketeams.BlockTeamsCRLF, disabled: true, status: blockreport.StatusBlocked, graph: "yes", outcome: "confirmed", note: "account disabled", account: "disabled"},
	{name: "no service principal", tenant: tenantNoSP, state: faketeams.StateBlocked, shape: faketeams.BlockTeamsCRLF, installed: no(), status: blockreport.StatusBlocked, graph: "unknown", outcome: "unknown", note: "service principal"},
	{name: "not consented", tenant: tenantNoCo, state: faketeams.StateBlocked, shape: faketeams.BlockTeamsLF, installed: no(), status: blockreport.StatusBlocked, graph: "unknown", outcome: "unknown", note: "not consented"},
}

type env struct {
	fake    *faketeams.Server
	db      *store.DB
	prober  *probe.Prober
	checker *graph.Checker
	client  *graph.Client
	refs    map[string]blockreport.Reference // by case name
}

func (e *env) checkerClient(*testing.T) *graph.Client { return e.client }

func setup(t *testing.T, url string, cases []verdictCase, g faketeams.Graph) *env {
	t.Helper()
	g.Enabled = true
	g.Installed = map[string]bool{}
	var pop []faketeams.Conversation
	for i, c := range cases {
		tenant := c.tenant
		if tenant == "" {
			tenant = tenantA
		}
		aad := "00000000-0000-4000-8000-" + strings.Repeat("0", 10) + string(rune('a'+i/26)) + string(rune('a'+i%26))
		pop = append(pop, faketeams.Conversation{
			TenantID: tenant, UserID: "29:" + aad, AADObjectID: aad, UserName: c.name, Email: aad + "@example.com",
			ConversationID: "a:" + aad, ConversationType: blockreport.ConversationPersonal, State: c.state, BlockShape: c.shape,
		})
		if c.installed != nil {
			g.Installed[aad] = *c.installed
		}
		if c.left {
			g.Left = append(g.Left, aad)
		}
		if c.disabled {
			g.Disabled = append(g.Disabled, aad)
		}
	}
	g.Tenants = append(g.Tenants, faketeams.GraphTenant{ID: tenantA, Name: "Contoso Ltd"},
		faketeams.GraphTenant{ID: tenantNoSP, NoServicePrincipal: true}, faketeams.GraphTenant{ID: tenantNoCo, Name: "Fabrikam", NoConsent: true})
	fake, err := faketeams.Start(faketeams.Config{Population: pop, Graph: g, Limits: faketeams.NoLimits(), TokenPrefix: "tok-"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	db, err := store.Open(context.Background(), url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	refs := fake.References()
	if _, err := db.UpsertReferences(context.Background(), refs, time.Now()); err != nil {
		t.Fatal(err)
	}
	cred, err := auth.New(auth.Config{AppID: faketeams.DefaultAppID, Secret: faketeams.DefaultAppSecret, TokenURL: fake.TokenURL("botframework.com")})
	if err != nil {
		t.Fatal(err)
	}
	p, err := probe.New(probe.Config{
		AppID: faketeams.DefaultAppID, Credential: cred, AllowHosts: []string{"127.0.0.1"},
		Rate: 500, Concurrency: 16, Attempts: 1, Timeout: 5 * time.Second, BackoffBase: time.Millisecond,
		FlushEvery: 10 * time.Millisecond, StoreWait: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := graph.New(graph.Config{URL: fake.GraphURL(), Credential: cred, AppID: faketeams.DefaultCatalogAppID, BackoffBase: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{fake: fake, db: db, prober: p, refs: map[string]blockreport.Reference{}, client: c}
	e.checker = graph.NewChecker(graph.CheckerConfig{Client: c, Store: db, Poll: 20 * time.Millisecond})
	for _, r := range refs {
		e.refs[r.UserName] = r
	}
	return e
}

func (e *env) run(t *testing.T) blockreport.Run {
	t.Helper()
	ctx := context.Background()
	sess, err := runs.Begin(ctx, e.db, runs.Choice{Mode: probe.ModeTyping}, runs.Options{Alongside: e.checker.Run})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	run, err := sess.Probe(ctx, e.prober)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != blockreport.RunFinished {
		t.Fatalf("run %s", run.State)
	}
	return run
}

type checkRow struct {
	Status    string `db:"status"`
	Installed string `db:"installed"`
	Outcome   string `db:"outcome"`
	Connector string `db:"connector_status"`
	Note      string `db:"note"`
	Answer    string `db:"graph_answer"`
	Old       string `db:"old_conversation_id"`
	Conv      string `db:"conversation_id"`
	Account   string `db:"account"`
}

// TestVerdicts runs the probe with the cross-check alongside against
// faketeams, on SQLite and PostgreSQL, and checks every verdict of issue
// 10 point 2, the unavailable tenants and the directory's account state.
func TestVerdicts(t *testing.T) {
	for _, st := range []struct{ name, url string }{
		{"sqlite", "sqlite:" + filepath.Join(t.TempDir(), "b.db")},
		{"postgres", pgtest.URL(t)},
	} {
		t.Run(st.name, func(t *testing.T) {
			e := setup(t, st.url, verdictCases, faketeams.Graph{})
			run := e.run(t)
			rows := map[string]blockreport.Row{}
			if err := e.db.Rows(context.Background(), run.ID, func(r blockreport.Row) error { rows[r.UserName] = r; return nil }); err != nil {
				t.Fatal(err)
			}
			for _, c := range verdictCases {
				ref := e.refs[c.name]
				r, ok := rows[c.name]
				if !ok {
					t.Errorf("%s: no result", c.name)
					continue
				}
				got := checkRow{Status: string(r.Status), Installed: string(r.Installed), Outcome: string(r.GraphOutcome),
					Connector: string(r.ConnectorStatus), Note: r.GraphNote, Answer: r.GraphAnswer, Old: r.OldConversationID,
					Conv: r.ConversationID, Account: r.Account}
				if got.Status != string(c.status) || got.Installed != string(c.graph) || got.Outcome != string(c.outcome) || got.Connector != string(c.connector) {
					t.Errorf("%s: status %s installed %s outcome %s connector %q, want %s %s %s %q (note %q, answer %q)",
						c.name, got.Status, got.Installed, got.Outcome, got.Connector, c.status, c.graph, c.outcome, c.connector, got.Note, got.Answer)
				}
				if c.note != "" && !strings.Contains(got.Note, c.note) {
					t.Errorf("%s: note %q, want it to mention %q", c.name, got.Note, c.note)
				}
				if c.account != "" && got.Account != c.account {
					t.Errorf("%s: account %q, want %q", c.name, got.Account, c.account)
				}
				if c.outcome == "relinked" {
					if got.Old != ref.ConversationID || got.Conv != e.fake.ChatID(ref.TenantID, ref.AADObjectID) {
						t.Errorf("%s: re-linked from %q to %q, want from %q to the installation's chat", c.name, got.Old, got.Conv, ref.ConversationID)
					}
				} else if got.Conv != ref.ConversationID {
					t.Errorf("%s: conversation changed to %q", c.name, got.Conv)
				}
			}
			tg, err := e.db.TenantGraphs(context.Background(), run.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{tenantA: true, tenantNoSP: false, tenantNoCo: false}
			for _, g := range tg {
				if g.Available != want[g.TenantID] {
					t.Errorf("tenant %s: available %v (%s)", g.TenantID, g.Available, g.Reason)
				}
				if g.TenantID == tenantA && g.Name != "Contoso Ltd" {
					t.Errorf("tenant name %q", g.Name)
				}
			}
			if len(tg) != 3 {
				t.Errorf("%d tenants recorded, want 3", len(tg))
			}
			counts, err := e.db.GraphCounts(context.Background(), run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if counts[blockreport.GraphChanged] != 3 || counts[blockreport.GraphRelinked] != 2 {
				t.Errorf("counts %v, want 3 changed and 2 relinked", counts)
			}
			// Totals follow the revised verdicts.
			if run.Totals[blockreport.StatusForbidden] != 0 || run.Totals[blockreport.StatusUninstalled] != 4 {
				t.Errorf("totals %v", run.Totals)
			}
			for _, it := range e.fake.IssuedTokens() {
				if it.Tenant == tenantNoCo || it.Tenant == tenantA {
					if it.Audience != strings.TrimSuffix(e.fake.GraphScope(), "/.default") {
						t.Errorf("customer-tenant token with audience %s", it.Audience)
					}
				} else if it.Audience != faketeams.ConnectorAudience {
					t.Errorf("token for %s with audience %s", it.Tenant, it.Audience)
				}
			}
		})
	}
}

// TestCoverage: with coverage on, every enabled member of the consented
// tenant is listed page by page; (a) users who installed the app without
// a stored reference get one (the installation's chat, on the tenant's
// usual service URL) and are probed in the same run; (b) users who never
// installed it are listed; disabled accounts are not counted; the
// unconsented tenant is skipped without failing the run.
func TestCoverage(t *testing.T) {
	for _, st := range []struct{ name, url string }{
		{"sqlite", "sqlite:" + filepath.Join(t.TempDir(), "b.db")},
		{"postgres", pgtest.URL(t)},
	} {
		t.Run(st.name, func(t *testing.T) {
			cases := []verdictCase{
				{name: "reachable", state: faketeams.StateActive},
				{name: "blocked", state: faketeams.StateBlocked, shape: faketeams.BlockTeamsCRLF},
				{name: "other tenant", tenant: tenantNoCo, state: faketeams.StateActive},
			}
			extra := []faketeams.DirectoryUser{
				{TenantID: tenantA, ID: "eeeeeeee-0000-4000-8000-000000000001", DisplayName: "Ines Installed", Mail: "ines@contoso.example", Department: "Sales", Installed: true},
				{TenantID: tenantA, ID: "eeeeeeee-0000-4000-8000-000000000002", DisplayName: "Ivo Installed", UPN: "ivo@contoso.example", Department: "HR", Installed: true},
				{TenantID: tenantA, ID: "eeeeeeee-0000-4000-8000-000000000003", DisplayName: "Nina Never", Department: "Legal"},
				{TenantID: tenantA, ID: "eeeeeeee-0000-4000-8000-000000000004", DisplayName: "Noah Never", Department: "Legal"},
				{TenantID: tenantA, ID: "eeeeeeee-0000-4000-8000-000000000005", DisplayName: "Nora Never", Department: "Finance"},
				{TenantID: tenantA, ID: "eeeeeeee-0000-4000-8000-000000000006", DisplayName: "Dora Disabled", Disabled: true},
			}
			e := setup(t, st.url, cases, faketeams.Graph{Users: extra, PageSize: 3})
			e.checker = graph.NewChecker(graph.CheckerConfig{Client: e.checkerClient(t), Store: e.db, Poll: 20 * time.Millisecond, Coverage: true})
			run := e.run(t)
			ctx := context.Background()

			got := map[string]blockreport.CoverageUser{}
			dept := map[string]string{}
			if err := e.db.Coverage(ctx, run.ID, func(c blockreport.CoverageUser, u blockreport.DirectoryUser) error {
				got[u.DisplayName], dept[u.DisplayName] = c, u.Department
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != 5 {
				t.Errorf("coverage users %v, want the 5 enabled users without a reference", got)
			}
			for _, n := range []string{"Nina Never", "Noah Never", "Nora Never"} {
				if c, ok := got[n]; !ok || c.Installed || c.ReferenceID != 0 {
					t.Errorf("%s: %+v, want listed as never installed", n, c)
				}
			}
			if dept["Nora Never"] != "Finance" {
				t.Errorf("department of a coverage user: %q", dept["Nora Never"])
			}
			rows := map[string]blockreport.Row{}
			if err := e.db.Rows(ctx, run.ID, func(r blockreport.Row) error { rows[r.UserName] = r; return nil }); err != nil {
				t.Fatal(err)
			}
			svc := e.refs["reachable"].ServiceURL
			for _, n := range []string{"Ines Installed", "Ivo Installed"} {
				c, ok := got[n]
				if !ok || !c.Installed || c.ReferenceID == 0 {
					t.Errorf("%s: %+v, want installed with a new reference", n, c)
					continue
				}
				r, ok := rows[n]
				if !ok || r.Status != blockreport.StatusReachable || r.Reference.ID != c.ReferenceID {
					t.Errorf("%s: result %+v, want the new reference probed reachable in this run", n, r.Result)
				}
				if r.ServiceURL != svc || !strings.HasSuffix(r.ConversationID, "@unq.gbl.spaces") {
					t.Errorf("%s: reference on %s to %s, want the tenant's service URL and the installation's chat", n, r.ServiceURL, r.ConversationID)
				}
			}
			if rows["Ivo Installed"].Email != "ivo@contoso.example" {
				t.Errorf("email of a created reference (UPN without mail): %q", rows["Ivo Installed"].Email)
			}
			tg, err := e.db.TenantGraphs(ctx, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range tg {
				switch g.TenantID {
				case tenantA:
					if g.EnabledUsers != 7 { // 2 with references + 5 without; the disabled one not counted
						t.Errorf("enabled users of tenant A: %d, want 7", g.EnabledUsers)
					}
				case tenantNoCo:
					if g.Available || g.EnabledUsers != -1 {
						t.Errorf("unconsented tenant %+v", g)
					}
				}
			}
			if n := e.fake.Stats().Total(faketeams.RouteGraphUsers); n < 3 {
				t.Errorf("%d users requests: the directory was not paged", n)
			}
		})
	}
}
