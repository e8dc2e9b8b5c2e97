package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
	"github.com/blockreport/blockreport/faketeams"
)

const (
	tenantA      = "aaaaaaaa-0000-4000-8000-000000000001"
	tenantB      = "bbbbbbbb-0000-4000-8000-000000000002"
	tenantNoSP   = "cccccccc-0000-4000-8000-000000000003"
	tenantNoCons = "dddddddd-0000-4000-8000-000000000004"
)

func personal(tenant, aad string, st faketeams.State) faketeams.Conversation {
	return faketeams.Conversation{
		TenantID: tenant, UserID: "29:" + aad, AADObjectID: aad, UserName: "User " + aad,
		Email: aad + "@example.com", ConversationID: "a:" + aad,
		ConversationType: blockreport.ConversationPersonal, State: st,
	}
}

// fake starts faketeams with Graph on.
func fake(t *testing.T, g faketeams.Graph, pop ...faketeams.Conversation) *faketeams.Server {
	t.Helper()
	g.Enabled = true
	s, err := faketeams.Start(faketeams.Config{Population: pop, Graph: g, TokenPrefix: "tok-"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func credential(t *testing.T, s *faketeams.Server) *auth.Credential {
	t.Helper()
	cred, err := auth.New(auth.Config{AppID: faketeams.DefaultAppID, Secret: faketeams.DefaultAppSecret, TokenURL: s.TokenURL("botframework.com")})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func client(t *testing.T, s *faketeams.Server, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{URL: s.GraphURL(), Credential: credential(t, s), AppID: faketeams.DefaultManifestID, BackoffBase: 10 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://graph.microsoft.com/v1.0", true},
		{"http://127.0.0.1:8080/v1.0", true},
		{"http://[::1]:8080/v1.0", true},
		{"http://localhost/v1.0", true},
		{"http://graph.example.com/v1.0", false},
		{"ftp://graph.microsoft.com", false},
		{"https://user:pw@graph.microsoft.com/v1.0", false},
		{"https://graph.microsoft.com/v1.0?x=1", false},
		{"graph.microsoft.com/v1.0", false},
		{"", false},
	} {
		if err := CheckURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
	if _, err := New(Config{URL: "http://graph.example.com", Credential: &auth.Credential{}, AppID: "x"}); err == nil {
		t.Error("New accepted a plain-http non-loopback Graph URL")
	}
	for cloud, want := range map[blockreport.Cloud]string{
		blockreport.CloudPublic: "https://graph.microsoft.com/v1.0", blockreport.CloudGCC: "https://graph.microsoft.com/v1.0",
		blockreport.CloudGCCH: "https://graph.microsoft.us/v1.0", blockreport.CloudDoD: "https://dod-graph.microsoft.us/v1.0",
	} {
		if got := DefaultURL(cloud); got != want {
			t.Errorf("DefaultURL(%s) = %s, want %s", cloud, got, want)
		}
	}
}

// TestInstallations: installed (blocked users too), not installed
// (uninstalled), 404 for a user who left, more than one batch, a token
// per tenant with the Graph scope, and the catalog resolved from the
// manifest id once per tenant.
func TestInstallations(t *testing.T) {
	var pop []faketeams.Conversation
	var ids []string
	for i := range 45 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		st := faketeams.StateActive
		switch i % 3 {
		case 1:
			st = faketeams.StateBlocked
		case 2:
			st = faketeams.StateUninstalled
		}
		pop = append(pop, personal(tenantA, id, st))
		ids = append(ids, id)
	}
	pop = append(pop, personal(tenantB, "11111111-0000-4000-8000-000000000001", faketeams.StateActive))
	s := fake(t, faketeams.Graph{Left: []string{ids[44]}}, pop...)
	c := client(t, s, nil)
	ctx := context.Background()
	got, err := c.Installations(ctx, tenantA, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ids) {
		t.Fatalf("%d installations, want %d", len(got), len(ids))
	}
	for i, in := range got {
		want := InstalledYes
		if i%3 == 2 {
			want = InstalledNo
		}
		if i == 44 {
			want = InstalledUnknown
			if in.Status != 404 || in.Code != "NotFound" {
				t.Errorf("user who left: %+v, want 404 NotFound", in)
			}
		}
		if in.UserID != ids[i] || in.Installed != want {
			t.Errorf("user %d: %+v, want %s", i, in, want)
		}
		if want == InstalledYes && in.ID == "" {
			t.Errorf("user %d: installed without an installation id", i)
		}
	}
	// A user of tenant B is unknown with tenant A's token.
	other, err := c.Installations(ctx, tenantA, []string{"11111111-0000-4000-8000-000000000001"})
	if err != nil || other[0].Installed != InstalledUnknown {
		t.Errorf("tenant B's user through tenant A: %+v %v", other, err)
	}
	if got, err := c.Installations(ctx, tenantB, []string{"11111111-0000-4000-8000-000000000001"}); err != nil || got[0].Installed != InstalledYes {
		t.Errorf("tenant B's user: %+v %v", got, err)
	}
	var tenants []string
	for _, it := range s.IssuedTokens() {
		if it.Audience != strings.TrimSuffix(s.GraphScope(), "/.default") {
			t.Errorf("token with audience %q, want the Graph origin", it.Audience)
		}
		tenants = append(tenants, it.Tenant)
	}
	slices.Sort(tenants)
	if !slices.Equal(tenants, []string{tenantA, tenantB}) {
		t.Errorf("tokens for %v, want one per tenant", tenants)
	}
	st := s.Stats()
	if n := st.Total(faketeams.RouteGraphCatalog); n != 2 {
		t.Errorf("%d catalog lookups, want one per tenant", n)
	}
	if n := st.Total(faketeams.RouteGraphBatch); n < 5 {
		t.Errorf("%d batches, want at least 3 for 45 users and one per single lookup", n)
	}
	if n := st.Count(faketeams.RouteGraphInstalled, "200") + st.Count(faketeams.RouteGraphInstalled, "404"); n != 47 {
		t.Errorf("%d installedApps answers, want one per lookup (47)", n)
	}
}

func TestUnavailableTenants(t *testing.T) {
	pop := []faketeams.Conversation{
		personal(tenantNoSP, "11111111-0000-4000-8000-000000000003", faketeams.StateActive),
		personal(tenantNoCons, "11111111-0000-4000-8000-000000000004", faketeams.StateActive),
	}
	s := fake(t, faketeams.Graph{Tenants: []faketeams.GraphTenant{
		{ID: tenantNoSP, NoServicePrincipal: true}, {ID: tenantNoCons, NoConsent: true},
	}}, pop...)
	c := client(t, s, nil)
	ctx := context.Background()

	_, err := c.Installations(ctx, tenantNoSP, []string{pop[0].AADObjectID})
	var te *TenantError
	if !errors.As(err, &te) || !errors.Is(err, ErrUnavailable) || te.Code != "AADSTS700016" || !strings.Contains(te.Reason, "service principal") {
		t.Errorf("no service principal: %v (%+v)", err, te)
	}
	_, err = c.Users(ctx, tenantNoCons, []string{pop[1].AADObjectID})
	if !errors.As(err, &te) || te.Status != 403 || te.Code != "Authorization_RequestDenied" {
		t.Errorf("not consented: %v", err)
	}
	if c.Unavailable(tenantNoCons) == nil || c.Unavailable(tenantNoSP) == nil {
		t.Error("tenants not remembered as unavailable")
	}
	before := s.Stats().Total(faketeams.RouteGraphBatch)
	if _, err := c.Installations(ctx, tenantNoCons, []string{pop[1].AADObjectID}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("second call: %v", err)
	}
	if s.Stats().Total(faketeams.RouteGraphBatch) != before {
		t.Error("an unavailable tenant was asked again")
	}
	for _, e := range []error{err, te} {
		if strings.Contains(e.Error(), "tok-") {
			t.Errorf("error holds a token: %v", e)
		}
	}
}

// TestRetryAfter: a tenant whose first Graph requests answer 429 with a
// fractional Retry-After is paused for it, then answered; another tenant
// is not held up by it.
func TestRetryAfter(t *testing.T) {
	u1, u2 := "11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"
	s := fake(t, faketeams.Graph{Tenants: []faketeams.GraphTenant{{ID: tenantA, Throttle429: 2, RetryAfter: 0.4}}},
		personal(tenantA, u1, faketeams.StateActive), personal(tenantB, u2, faketeams.StateActive))
	c := client(t, s, nil)
	ctx := context.Background()
	if _, err := c.CatalogID(ctx, tenantB); err != nil { // token and catalog of B first
		t.Fatal(err)
	}
	start := time.Now()
	got, err := c.Installations(ctx, tenantA, []string{u1})
	if err != nil || got[0].Installed != InstalledYes {
		t.Fatalf("after 429s: %+v %v", got, err)
	}
	if el := time.Since(start); el < 800*time.Millisecond {
		t.Errorf("two 429s with Retry-After 0.4 s answered after %v: Retry-After not honoured", el)
	}
	if n := s.Stats().Count(faketeams.RouteGraphCatalog, "429"); n != 2 {
		t.Errorf("%d catalog 429s, want 2", n)
	}
	if c.Unavailable(tenantA) != nil {
		t.Error("a throttled tenant became unavailable")
	}
}

// TestRetryAfterInBatch: batch members answered 429 (the fake's own
// per-tenant limit, 30/s) are sent again, and the client's pacing keeps
// most batches inside the limit.
func TestPacing(t *testing.T) {
	var pop []faketeams.Conversation
	var ids []string
	for i := range 75 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		pop = append(pop, personal(tenantA, id, faketeams.StateActive))
		ids = append(ids, id)
	}
	s := fake(t, faketeams.Graph{}, pop...)
	// The client is set 3x too fast: the fake's limit answers members 429,
	// and they are retried until answered.
	fast := client(t, s, func(c *Config) { c.TeamsRate = 90 })
	got, err := fast.Installations(context.Background(), tenantA, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range got {
		if in.Installed != InstalledYes {
			t.Fatalf("%+v after member 429s", in)
		}
	}
	if s.Stats().Count(faketeams.RouteGraphInstalled, "429") == 0 {
		t.Error("a client 3x over the limit was never throttled: the fake does not limit")
	}
	s2 := fake(t, faketeams.Graph{}, pop...)
	paced := client(t, s2, nil)
	if _, err := paced.Installations(context.Background(), tenantA, ids); err != nil {
		t.Fatal(err)
	}
	if n := s2.Stats().Count(faketeams.RouteGraphInstalled, "429"); n != 0 {
		t.Errorf("the paced client was throttled %d times", n)
	}
}

func TestUsersAndPaging(t *testing.T) {
	var pop []faketeams.Conversation
	var ids []string
	for i := range 40 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		pop = append(pop, personal(tenantA, id, faketeams.StateActive))
		ids = append(ids, id)
	}
	extra := []faketeams.DirectoryUser{
		{TenantID: tenantA, ID: "eeeeeeee-0000-4000-8000-000000000001", DisplayName: "Never Installed", Department: "Legal", UserType: "Member"},
		{TenantID: tenantA, ID: "eeeeeeee-0000-4000-8000-000000000002", DisplayName: "Disabled", Disabled: true},
	}
	s := fake(t, faketeams.Graph{Users: extra, PageSize: 7, Left: []string{ids[39]}, Disabled: []string{ids[0]},
		Tenants: []faketeams.GraphTenant{{ID: tenantA, Name: "Contoso Ltd"}}}, pop...)
	c := client(t, s, nil)
	ctx := context.Background()

	users, err := c.Users(ctx, tenantA, append(ids, "ffffffff-0000-4000-8000-000000000009"))
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 39 {
		t.Errorf("%d users found, want 39 (one left, one never existed)", len(users))
	}
	if _, ok := users[ids[39]]; ok {
		t.Error("the user who left was found")
	}
	if u := users[ids[1]]; u.Department == "" || u.DisplayName != "User "+ids[1] || !u.AccountEnabled || u.UPN == "" {
		t.Errorf("user %+v", u)
	}
	if users[ids[0]].AccountEnabled {
		t.Error("disabled account shown enabled")
	}
	if n := s.Stats().Total(faketeams.RouteGraphBatch); n != 1 {
		t.Errorf("%d batches for 41 ids, want 1 (15 ids per request, 20 per batch)", n)
	}

	var all []User
	pages := 0
	err = c.EnabledUsers(ctx, tenantA, func(p []User) error { pages++; all = append(all, p...); return nil })
	if err != nil {
		t.Fatal(err)
	}
	// 39 population users + 2 extra - 2 disabled = 39 enabled.
	if len(all) != 39 || pages < 6 {
		t.Errorf("%d enabled users in %d pages, want 39 in at least 6", len(all), pages)
	}
	for _, u := range all {
		if !u.AccountEnabled {
			t.Errorf("disabled user %s listed", u.ID)
		}
	}
	name, err := c.Organization(ctx, tenantA)
	if err != nil || name != "Contoso Ltd" {
		t.Errorf("organization %q %v", name, err)
	}
}

// TestTokenOnlyToGraphHost: a redirect is not followed and a next link on
// another host is refused, so the Graph token never leaves the Graph host.
func TestTokenOnlyToGraphHost(t *testing.T) {
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = append(leaked, r.Header.Get("Authorization"))
		w.Write([]byte(`{"value":[]}`))
	}))
	defer other.Close()
	graphSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/organization"):
			http.Redirect(w, r, other.URL+"/v1.0/organization", http.StatusTemporaryRedirect)
		default:
			w.Write([]byte(`{"value":[{"id":"u1","accountEnabled":true}],"@odata.nextLink":"` + other.URL + `/v1.0/users?$skiptoken=1"}`))
		}
	}))
	defer graphSrv.Close()
	c, err := New(Config{URL: graphSrv.URL + "/v1.0", Credential: staticCred("graph-token"), AppID: "x", Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Organization(context.Background(), tenantA); err == nil {
		t.Error("a redirect answer was taken as the organization")
	}
	err = c.EnabledUsers(context.Background(), tenantA, func([]User) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "not on the Graph host") {
		t.Errorf("next link to another host: %v", err)
	}
	if len(leaked) > 0 {
		t.Errorf("the other host got %v", leaked)
	}
}

type staticCred string

func (s staticCred) Token(context.Context, string, string) (string, error) { return string(s), nil }
func (s staticCred) Renew(context.Context, string, string, string) (string, error) {
	return string(s), nil
}

// TestGraphTokenRefusedByConnector: the fake connector rejects a Graph
// token (and the fake Graph a connector token), so a mix-up fails tests.
func TestTokenSeparation(t *testing.T) {
	u := "11111111-0000-4000-8000-000000000001"
	s := fake(t, faketeams.Graph{}, personal(tenantA, u, faketeams.StateActive))
	cred := credential(t, s)
	ctx := context.Background()
	gtok, err := cred.Token(ctx, tenantA, s.GraphScope())
	if err != nil {
		t.Fatal(err)
	}
	ctok, err := cred.Token(ctx, "", faketeams.Scope)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, u, tok string) int {
		req, _ := http.NewRequest(method, u, strings.NewReader(`{"type":"typing"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	conn := s.ServiceURL("amer") + "v3/conversations/a:" + u + "/activities"
	if got := call(http.MethodPost, conn, gtok); got != http.StatusUnauthorized {
		t.Errorf("Graph token at the connector: %d, want 401", got)
	}
	if got := call(http.MethodPost, conn, ctok); got/100 != 2 {
		t.Errorf("connector token at the connector: %d", got)
	}
	org := s.GraphURL() + "/organization"
	if got := call(http.MethodGet, org, ctok); got != http.StatusUnauthorized {
		t.Errorf("connector token at Graph: %d, want 401", got)
	}
	if got := call(http.MethodGet, org, gtok); got != http.StatusOK {
		t.Errorf("Graph token at Graph: %d", got)
	}
}

func TestChats(t *testing.T) {
	u := "11111111-0000-4000-8000-000000000001"
	s := fake(t, faketeams.Graph{Installed: map[string]bool{u: true}}, personal(tenantA, u, faketeams.StateUninstalled))
	c := client(t, s, nil)
	ctx := context.Background()
	in, err := c.Installations(ctx, tenantA, []string{u})
	if err != nil || in[0].Installed != InstalledYes {
		t.Fatalf("%+v %v", in, err)
	}
	chats, err := c.Chats(ctx, tenantA, map[string]string{u: in[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if chats[u] == "" || chats[u] != s.ChatID(tenantA, u) || !strings.HasSuffix(chats[u], "@unq.gbl.spaces") {
		t.Errorf("chat %q, want %q", chats[u], s.ChatID(tenantA, u))
	}
}
