package faketeams

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// The simulated Microsoft Graph v1.0, under /v1.0/ on the same listeners
// as the connector: the app catalog, a user's installed apps (filtered to
// one app) and the installation's chat, users (paged, $filter on
// accountEnabled and on id in (...)), directoryObjects/getByIds,
// organization and JSON $batch. Wire formats follow Microsoft Graph v1.0's
// reference for those calls and its batching and throttling pages. The tenant of every request is the
// tenant of its bearer token (tokens are per customer tenant), so a token
// of one tenant sees nothing of another.

// Graph routes in Stats.
const (
	RouteGraphCatalog   = "graph_catalog"
	RouteGraphInstalled = "graph_installed_apps"
	RouteGraphChat      = "graph_chat"
	RouteGraphUsers     = "graph_users"
	RouteGraphGetByIDs  = "graph_get_by_ids"
	RouteGraphOrg       = "graph_organization"
	RouteGraphBatch     = "graph_batch"
	RouteGraphUnknown   = "graph_unknown"
)

// Graph defaults.
const (
	// GraphAudience is the audience of Graph tokens in the public cloud;
	// the fake also accepts a token for its own origin (what a client
	// pointed at it asks for: "{graph origin}/.default").
	GraphAudience = "https://graph.microsoft.com"
	// DefaultCatalogAppID is the app's id in every tenant's catalog.
	DefaultCatalogAppID = "22f73bbe-f67a-4dea-bd54-54cac718cb2b"
	// DefaultManifestID is the app's manifest id (externalId).
	DefaultManifestID = "cf1ba4c7-f94e-4d80-ba90-5594b641a8ee"
	// DefaultGraphRate is the Teams limit of installedApps and appCatalogs
	// requests per app per tenant per second (each $batch member counts).
	DefaultGraphRate = 30
	graphPrefix      = "/v1.0/"
	maxGraphPage     = 999
)

// Graph configures the simulated Microsoft Graph. The zero value serves
// nothing (Graph routes answer 404).
type Graph struct {
	Enabled      bool
	CatalogAppID string // default DefaultCatalogAppID
	ManifestID   string // default DefaultManifestID
	AppName      string // default Config.BotName
	Tenants      []GraphTenant
	// Users are directory users beyond the population's: people who never
	// installed the app (Installed false) or installed it without the bot
	// storing a reference (Installed true).
	Users []DirectoryUser
	// Installed overrides, by AAD object id, whether the app is installed
	// for a population user (by default: installed unless the
	// conversation's state is uninstalled, not_installed or deleted). A
	// user installed whose conversation answers 403/404 has a stale
	// reference: the installation's chat answers as an active conversation.
	Installed map[string]bool
	// Left are AAD object ids of population users the directory no longer
	// has (people who left): /users and installedApps answer 404.
	Left []string
	// Disabled are AAD object ids of population users whose account is
	// disabled.
	Disabled []string
	// Rate is the per-tenant limit of Teams requests per second (default
	// DefaultGraphRate; negative: none).
	Rate int
	// PageSize caps a users page (default 999), so that a test can page.
	PageSize int
}

// GraphTenant is one customer tenant as Graph sees it.
type GraphTenant struct {
	ID   string
	Name string // organization displayName
	// NoConsent: no admin consented, so the token is issued but every
	// Graph call answers 403 (Authorization_RequestDenied on the
	// directory, Forbidden on Teams).
	NoConsent bool
	// NoServicePrincipal: the app was never provisioned in the tenant, so
	// the token endpoint answers AADSTS700016.
	NoServicePrincipal bool
	// Throttle429 is the number of Graph requests (batch members count
	// one each) of this tenant that answer 429 with Retry-After
	// (RetryAfter seconds, default 1) before it answers normally.
	Throttle429 int
	RetryAfter  float64
}

// DirectoryUser is one user of a tenant's directory.
type DirectoryUser struct {
	TenantID       string `json:"tenantId"`
	ID             string `json:"id"`
	DisplayName    string `json:"displayName"`
	UPN            string `json:"userPrincipalName"`
	Mail           string `json:"mail"`
	Department     string `json:"department"`
	JobTitle       string `json:"jobTitle"`
	OfficeLocation string `json:"officeLocation"`
	Country        string `json:"country"`
	UserType       string `json:"userType"` // Member or Guest
	Disabled       bool   `json:"disabled,omitempty"`
	Installed      bool   `json:"installed,omitempty"`
}

// graphState is the simulated Graph's data, fixed at Start; the mutable
// counters are under Server.mu.
type graphState struct {
	cfg     Graph
	tenants map[string]*graphTenant // by lower-case tenant id
}

type graphTenant struct {
	GraphTenant
	users    map[string]*graphUser // by id
	order    []string              // user ids in directory order
	teams    []time.Time           // Teams requests admitted in the last second
	throttle int                   // 429s still to answer
}

type graphUser struct {
	DirectoryUser
	installID string
	chatID    string
	conv      *conv // the population conversation, nil for Graph.Users
	fixed     *bool // Graph.Installed's override
}

// installed tells whether the app is installed for u now: the override,
// else what the conversation's current state implies (so SetState moves
// Graph along), else DirectoryUser.Installed. s.mu is held.
func (u *graphUser) installed() bool {
	switch {
	case u.fixed != nil:
		return *u.fixed
	case u.conv != nil:
		return !stale(u.conv.State)
	}
	return u.Installed
}

func (s *Server) initGraph() error {
	g := s.cfg.Graph
	if !g.Enabled {
		return nil
	}
	if g.CatalogAppID == "" {
		g.CatalogAppID = DefaultCatalogAppID
	}
	if g.ManifestID == "" {
		g.ManifestID = DefaultManifestID
	}
	if g.AppName == "" {
		g.AppName = s.cfg.BotName
	}
	if g.Rate == 0 {
		g.Rate = DefaultGraphRate
	}
	if g.PageSize <= 0 || g.PageSize > maxGraphPage {
		g.PageSize = maxGraphPage
	}
	st := &graphState{cfg: g, tenants: map[string]*graphTenant{}}
	tenant := func(id string) *graphTenant {
		k := strings.ToLower(id)
		t := st.tenants[k]
		if t == nil {
			t = &graphTenant{GraphTenant: GraphTenant{ID: id, Name: "Tenant " + id}, users: map[string]*graphUser{}}
			st.tenants[k] = t
		}
		return t
	}
	for _, t := range g.Tenants {
		if t.ID == "" {
			return fmt.Errorf("graph tenant without an id")
		}
		gt := tenant(t.ID)
		name := gt.Name
		gt.GraphTenant = t
		if gt.Name == "" {
			gt.Name = name
		}
		if gt.RetryAfter <= 0 {
			gt.RetryAfter = 1
		}
		gt.throttle = t.Throttle429
	}
	left, disabled := toSet(g.Left), toSet(g.Disabled)
	add := func(u DirectoryUser, c *conv, fixed *bool) error {
		t := tenant(u.TenantID)
		if _, dup := t.users[u.ID]; dup {
			return fmt.Errorf("graph: duplicate directory user %s in tenant %s", u.ID, u.TenantID)
		}
		gu := &graphUser{DirectoryUser: u, conv: c, fixed: fixed}
		gu.installID = base64.StdEncoding.EncodeToString([]byte(u.ID + "##" + g.CatalogAppID))
		gu.chatID = "19:" + u.ID + "_" + g.CatalogAppID + "@unq.gbl.spaces"
		switch {
		case c != nil && !(u.Installed && stale(c.State)):
			s.convs[gu.chatID] = c // the same 1:1 chat under its Graph id
		case u.Installed && s.convs[gu.chatID] == nil:
			// A stale reference, or none stored: the installation's chat is
			// an active conversation of its own.
			nc := &conv{Conversation: Conversation{
				TenantID: u.TenantID, UserID: "29:" + u.ID, AADObjectID: u.ID, UserName: u.DisplayName,
				Email: u.Mail, ConversationID: gu.chatID, ConversationType: blockreport.ConversationPersonal,
				Region: DefaultRegion, State: StateActive,
			}}
			if c != nil {
				nc.UserID, nc.Region = c.UserID, c.Region
			}
			s.convs[gu.chatID] = nc
			if c == nil {
				s.personal[u.TenantID+"|"+nc.UserID] = nc
				s.personal[u.TenantID+"|"+u.ID] = nc
			}
		}
		t.users[u.ID] = gu
		t.order = append(t.order, u.ID)
		return nil
	}
	for _, pc := range s.cfg.Population {
		if pc.ConversationType != blockreport.ConversationPersonal || pc.AADObjectID == "" || left[pc.AADObjectID] {
			continue
		}
		c := s.convs[pc.ConversationID]
		u := directoryUser(pc)
		u.Installed = !stale(pc.State)
		var fixed *bool
		if v, ok := g.Installed[pc.AADObjectID]; ok {
			u.Installed, fixed = v, &v
		}
		u.Disabled = disabled[pc.AADObjectID]
		if err := add(u, c, fixed); err != nil {
			return err
		}
	}
	for _, u := range g.Users {
		if u.TenantID == "" || u.ID == "" {
			return fmt.Errorf("graph: directory user %q without tenant or id", u.ID)
		}
		if err := add(u, nil, nil); err != nil {
			return err
		}
	}
	s.graph = st
	return nil
}

// stale tells whether a conversation in state st means the app is not
// installed (by default).
func stale(st State) bool {
	return st == StateUninstalled || st == StateNotInstalled || st == StateDeleted
}

func toSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// Departments, titles, offices and countries of generated directory users.
var (
	departments = []string{"Sales", "Engineering", "Finance", "Marketing", "Support", "Operations", "Legal", "HR"}
	jobTitles   = []string{"Associate", "Manager", "Director", "Analyst", "Engineer", "Specialist"}
	offices     = []string{"Seattle", "London", "Berlin", "São Paulo", "Tokyo", "Remote"}
	countries   = []string{"US", "GB", "DE", "BR", "JP", "FR"}
)

func pick(list []string, key string, salt string) string {
	h := fnv.New32a()
	io.WriteString(h, salt+key) //nolint:errcheck // hashes never fail
	return list[int(h.Sum32())%len(list)]
}

// directoryUser is the directory entry of a population user.
func directoryUser(c Conversation) DirectoryUser {
	return DirectoryUser{
		TenantID: c.TenantID, ID: c.AADObjectID, DisplayName: c.UserName, UPN: c.Email, Mail: c.Email,
		Department: pick(departments, c.AADObjectID, "d"), JobTitle: pick(jobTitles, c.AADObjectID, "j"),
		OfficeLocation: pick(offices, c.AADObjectID, "o"), Country: pick(countries, c.AADObjectID, "c"),
		UserType: "Member",
	}
}

// GraphUsers returns every directory user (population users included),
// tenant by tenant in directory order; nil when Graph is off.
func (s *Server) GraphUsers() []DirectoryUser {
	if s.graph == nil {
		return nil
	}
	var out []DirectoryUser
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.graph.sortedTenants() {
		for _, id := range t.order {
			u := t.users[id]
			d := u.DirectoryUser
			d.Installed = u.installed()
			out = append(out, d)
		}
	}
	return out
}

// ChatID is the Graph chat id of the app's installation for a user ("" if
// the app is not installed for them).
func (s *Server) ChatID(tenant, aadObjectID string) string {
	if s.graph == nil {
		return ""
	}
	if t := s.graph.tenants[strings.ToLower(tenant)]; t != nil {
		if u := t.users[aadObjectID]; u != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			if u.installed() {
				return u.chatID
			}
		}
	}
	return ""
}

// GraphURL is the Graph root of this server, http://127.0.0.1:PORT/v1.0.
func (s *Server) GraphURL() string { return s.url + "/v1.0" }

// GraphScope is the scope a client of GraphURL asks for.
func (s *Server) GraphScope() string { return s.url + "/.default" }

func (g *graphState) sortedTenants() []*graphTenant {
	out := make([]*graphTenant, 0, len(g.tenants))
	for _, t := range g.tenants {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *graphTenant) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// graphScope tells whether scope is one of the Graph's while Graph is on.
func (s *Server) graphScope(scope string) bool {
	if s.graph == nil {
		return false
	}
	return scope == GraphAudience+"/.default" || scope == s.url+"/.default" || (s.tls != nil && scope == s.tls.url+"/.default")
}

// noServicePrincipal tells whether the app has no service principal in
// tenant (its token endpoint then answers AADSTS700016).
func (s *Server) noServicePrincipal(tenant string) bool {
	if s.graph == nil {
		return false
	}
	t := s.graph.tenants[strings.ToLower(tenant)]
	return t != nil && t.NoServicePrincipal
}

// graphAnswer is one Graph answer, served directly or as a $batch member.
type graphAnswer struct {
	route  string
	status int
	header http.Header
	body   any
}

func graphError(route string, status int, code, msg string) graphAnswer {
	return graphAnswer{route: route, status: status, body: map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]string{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": randomHex(8)},
	}}}
}

// serveGraph answers the Graph routes; it reports whether path was one.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request, path string) bool {
	if !strings.HasPrefix(path, graphPrefix) {
		return false
	}
	if s.graph == nil {
		s.writeGraph(w, "", graphError(RouteGraphUnknown, http.StatusNotFound, "NotFound", "Graph is not simulated"))
		return true
	}
	if !s.sleep(r.Context(), s.latency()) {
		return true
	}
	it, ok := s.bearer(r, GraphAudience)
	if !ok {
		it, ok = s.bearer(r, strings.TrimSuffix(baseURL(r), "/"))
	}
	if !ok {
		s.writeGraph(w, "", graphError(RouteGraphUnknown, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."))
		return true
	}
	t := s.graph.tenants[strings.ToLower(it.Tenant)]
	if t == nil {
		s.writeGraph(w, it.Tenant, graphError(RouteGraphUnknown, http.StatusUnauthorized, "InvalidAuthenticationToken", "The tenant of the token is unknown."))
		return true
	}
	rest := strings.TrimPrefix(path, graphPrefix)
	if rest == "$batch" || rest == "%24batch" {
		s.serveBatch(w, r, t)
		return true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return true
	}
	a := s.graphRequest(t, baseURL(r)+"/v1.0", r.Method, "/"+rest, r.URL.RawQuery, body)
	s.writeGraph(w, t.ID, a)
	return true
}

func (s *Server) writeGraph(w http.ResponseWriter, tenant string, a graphAnswer) {
	b, _ := json.Marshal(a.body)
	h := a.header
	if h == nil {
		h = http.Header{}
	}
	h.Set("request-id", randomHex(8))
	s.reply(w, a.route, tenant, "", a.status, b, h)
}

// serveBatch is POST /v1.0/$batch: up to 20 members, each answered (and
// limited, and throttled) on its own; the batch itself answers 200.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request, t *graphTenant) {
	if r.Method != http.MethodPost {
		s.writeGraph(w, t.ID, graphError(RouteGraphBatch, http.StatusMethodNotAllowed, "Request_BadRequest", "Use POST"))
		return
	}
	var req struct {
		Requests []struct {
			ID      string            `json:"id"`
			Method  string            `json:"method"`
			URL     string            `json:"url"`
			Body    json.RawMessage   `json:"body"`
			Headers map[string]string `json:"headers"`
		} `json:"requests"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&req); err != nil {
		s.writeGraph(w, t.ID, graphError(RouteGraphBatch, http.StatusBadRequest, "BadRequest", "Invalid batch payload: "+err.Error()))
		return
	}
	if len(req.Requests) == 0 || len(req.Requests) > 20 {
		s.writeGraph(w, t.ID, graphError(RouteGraphBatch, http.StatusBadRequest, "BadRequest", "Batch must hold 1 to 20 requests."))
		return
	}
	seen := map[string]bool{}
	for _, m := range req.Requests {
		id := strings.ToLower(m.ID)
		if id == "" || seen[id] || m.Method == "" || m.URL == "" || strings.Contains(m.URL, "://") {
			s.writeGraph(w, t.ID, graphError(RouteGraphBatch, http.StatusBadRequest, "BadRequest", "Each request needs a unique id, a method and a relative url."))
			return
		}
		if len(m.Body) > 0 && m.Headers["Content-Type"] == "" && m.Headers["content-type"] == "" {
			s.writeGraph(w, t.ID, graphError(RouteGraphBatch, http.StatusBadRequest, "BadRequest", "A request with a body needs a Content-Type header."))
			return
		}
		seen[id] = true
	}
	resps := make([]map[string]any, 0, len(req.Requests))
	for i := len(req.Requests) - 1; i >= 0; i-- { // any order: correlate by id
		m := req.Requests[i]
		p, q, _ := strings.Cut(m.URL, "?")
		a := s.graphRequest(t, baseURL(r)+"/v1.0", strings.ToUpper(m.Method), p, q, m.Body)
		s.mu.Lock()
		s.stats.count(a.route, fmt.Sprint(a.status), "")
		if a.status == http.StatusTooManyRequests {
			s.stats.Throttled++
		}
		s.mu.Unlock()
		h := map[string]string{"Content-Type": "application/json"}
		for k := range a.header {
			h[k] = a.header.Get(k)
		}
		resps = append(resps, map[string]any{"id": m.ID, "status": a.status, "headers": h, "body": a.body})
	}
	s.writeGraph(w, t.ID, graphAnswer{route: RouteGraphBatch, status: http.StatusOK, body: map[string]any{"responses": resps}})
}

// graphRequest answers one Graph request of tenant t (path with a leading
// "/", without /v1.0).
func (s *Server) graphRequest(t *graphTenant, base, method, path, rawQuery string, body []byte) graphAnswer {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return graphError(RouteGraphUnknown, http.StatusBadRequest, "BadRequest", "Invalid query")
	}
	if p, err := url.PathUnescape(path); err == nil {
		path = p
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	route := RouteGraphUnknown
	teams := false
	switch {
	case len(segs) == 2 && segs[0] == "appCatalogs" && segs[1] == "teamsApps":
		route, teams = RouteGraphCatalog, true
	case len(segs) == 4 && segs[0] == "users" && segs[2] == "teamwork" && segs[3] == "installedApps":
		route, teams = RouteGraphInstalled, true
	case len(segs) == 6 && segs[0] == "users" && segs[2] == "teamwork" && segs[3] == "installedApps" && segs[5] == "chat":
		route, teams = RouteGraphChat, true
	case len(segs) == 1 && segs[0] == "users":
		route = RouteGraphUsers
	case len(segs) == 2 && segs[0] == "directoryObjects" && segs[1] == "getByIds":
		route = RouteGraphGetByIDs
	case len(segs) == 1 && segs[0] == "organization":
		route = RouteGraphOrg
	default:
		return graphError(route, http.StatusNotFound, "BadRequest", "Resource not found for the segment '"+segs[0]+"'.")
	}
	if a, limited := s.graphLimit(t, route, teams); limited {
		return a
	}
	if t.NoConsent {
		if teams {
			return graphError(route, http.StatusForbidden, "Forbidden", "Missing role permissions on the request. API requires one of 'TeamsAppInstallation.ReadForUser.All'. Roles on the request ''.")
		}
		return graphError(route, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	}
	wantMethod := http.MethodGet
	if route == RouteGraphGetByIDs {
		wantMethod = http.MethodPost
	}
	if method != wantMethod {
		return graphError(route, http.StatusMethodNotAllowed, "Request_BadRequest", "Use "+wantMethod)
	}
	g := s.graph.cfg
	switch route {
	case RouteGraphCatalog:
		f := q.Get("$filter")
		app := map[string]any{"id": g.CatalogAppID, "externalId": g.ManifestID, "displayName": g.AppName, "distributionMethod": "organization"}
		match := f == "" || filterHas(f, "id", g.CatalogAppID) || filterHas(f, "externalId", g.ManifestID)
		if !match {
			return graphAnswer{route: route, status: 200, body: map[string]any{"value": []any{}}}
		}
		return graphAnswer{route: route, status: 200, body: map[string]any{"value": []any{app}}}
	case RouteGraphInstalled, RouteGraphChat:
		u := t.users[segs[1]]
		if u == nil {
			return graphError(route, http.StatusNotFound, "NotFound", "User Id '"+segs[1]+"' not found.")
		}
		s.mu.Lock()
		installed := u.installed()
		s.mu.Unlock()
		if route == RouteGraphChat {
			if !installed || segs[4] != u.installID {
				return graphError(route, http.StatusNotFound, "NotFound", "App installation not found.")
			}
			return graphAnswer{route: route, status: 200, body: map[string]any{"id": u.chatID}}
		}
		f := q.Get("$filter")
		if f != "" && !filterHas(f, "teamsApp/id", g.CatalogAppID) && !filterHas(f, "teamsApp/externalId", g.ManifestID) {
			return graphAnswer{route: route, status: 200, body: map[string]any{"value": []any{}}}
		}
		if !installed {
			return graphAnswer{route: route, status: 200, body: map[string]any{"value": []any{}}}
		}
		return graphAnswer{route: route, status: 200, body: map[string]any{"value": []any{map[string]any{
			"id":       u.installID,
			"teamsApp": map[string]any{"id": g.CatalogAppID, "externalId": g.ManifestID, "displayName": g.AppName, "distributionMethod": "organization"},
		}}}}
	case RouteGraphOrg:
		return graphAnswer{route: route, status: 200, body: map[string]any{"value": []any{map[string]any{"id": t.ID, "displayName": t.Name}}}}
	case RouteGraphGetByIDs:
		var req struct {
			IDs []string `json:"ids"`
		}
		if json.Unmarshal(body, &req) != nil || len(req.IDs) == 0 || len(req.IDs) > 1000 {
			return graphError(route, http.StatusBadRequest, "Request_BadRequest", "ids: 1 to 1000 ids")
		}
		var out []any
		for _, id := range req.IDs {
			if u := t.users[id]; u != nil {
				m := userJSON(u.DirectoryUser)
				m["@odata.type"] = "#microsoft.graph.user"
				out = append(out, m)
			}
		}
		return graphAnswer{route: route, status: 200, body: map[string]any{"value": nonNil(out)}}
	}
	return s.graphUsers(t, base, q)
}

func nonNil(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

// graphUsers is GET /users: $filter "id in (...)" (at most 15 ids) or
// "accountEnabled eq true", $top, and @odata.nextLink paging through
// $skiptoken.
func (s *Server) graphUsers(t *graphTenant, base string, q url.Values) graphAnswer {
	route := RouteGraphUsers
	f := strings.TrimSpace(q.Get("$filter"))
	var ids []string
	enabledOnly := false
	switch {
	case f == "":
	case strings.HasPrefix(f, "id in (") && strings.HasSuffix(f, ")"):
		for _, p := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(f, "id in ("), ")"), ",") {
			ids = append(ids, strings.Trim(strings.TrimSpace(p), "'"))
		}
		if len(ids) > 15 {
			return graphError(route, http.StatusBadRequest, "Request_UnsupportedQuery", "Too many child clauses specified in search filter expression containing 'OR' operators: 16. Max allowed: 15.")
		}
	case f == "accountEnabled eq true":
		enabledOnly = true
	default:
		return graphError(route, http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported query.")
	}
	if ids != nil {
		var out []any
		for _, id := range ids {
			if u := t.users[id]; u != nil {
				out = append(out, userJSON(u.DirectoryUser))
			}
		}
		return graphAnswer{route: route, status: 200, body: map[string]any{"value": nonNil(out)}}
	}
	top := s.graph.cfg.PageSize
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxGraphPage {
			return graphError(route, http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", v))
		}
		top = min(top, n)
	}
	start := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "X"))
		if err != nil || n < 0 || n > len(t.order) {
			return graphError(route, http.StatusBadRequest, "Request_BadRequest", "Invalid $skiptoken")
		}
		start = n
	}
	var out []any
	i := start
	for ; i < len(t.order) && len(out) < top; i++ {
		u := t.users[t.order[i]]
		if enabledOnly && u.Disabled {
			continue
		}
		out = append(out, userJSON(u.DirectoryUser))
	}
	res := map[string]any{"value": nonNil(out)}
	if i < len(t.order) {
		next := url.Values{}
		for k, v := range q {
			if k != "$skiptoken" {
				next[k] = v
			}
		}
		next.Set("$skiptoken", "X"+strconv.Itoa(i))
		// The nextLink is absolute on the Graph root the client uses.
		res["@odata.nextLink"] = base + "/users?" + next.Encode()
	}
	return graphAnswer{route: route, status: 200, body: res}
}

func userJSON(u DirectoryUser) map[string]any {
	return map[string]any{
		"id": u.ID, "displayName": u.DisplayName, "userPrincipalName": u.UPN, "mail": u.Mail,
		"department": u.Department, "jobTitle": u.JobTitle, "officeLocation": u.OfficeLocation,
		"country": u.Country, "accountEnabled": !u.Disabled, "userType": u.UserType,
	}
}

// filterHas tells whether an OData $filter compares field to value with eq.
func filterHas(filter, field, value string) bool {
	for _, part := range strings.Split(filter, " or ") {
		part = strings.TrimSpace(part)
		if strings.EqualFold(part, field+" eq '"+value+"'") {
			return true
		}
	}
	return false
}

// graphLimit applies the tenant's injected 429s and, to Teams requests,
// the per-tenant rate limit.
func (s *Server) graphLimit(t *graphTenant, route string, teams bool) (graphAnswer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	throttled := func(secs float64) (graphAnswer, bool) {
		a := graphError(route, http.StatusTooManyRequests, "TooManyRequests", "Please retry again later.")
		a.header = http.Header{"Retry-After": {strconv.FormatFloat(secs, 'f', -1, 64)}}
		return a, true
	}
	if t.throttle > 0 {
		t.throttle--
		return throttled(t.RetryAfter)
	}
	if !teams || s.graph.cfg.Rate < 0 {
		return graphAnswer{}, false
	}
	now := s.cfg.Now()
	t.teams = trim(t.teams, now.Add(-time.Second))
	if wait := retryAfter(t.teams, s.graph.cfg.Rate, time.Second, now); wait > 0 {
		return throttled(math.Ceil(wait.Seconds()*10) / 10)
	}
	t.teams = append(t.teams, now)
	return graphAnswer{}, false
}
