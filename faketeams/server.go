package faketeams

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// Defaults of Config.
const (
	DefaultAppID     = "00000000-0000-0000-0000-0000000000aa"
	DefaultAppSecret = "fake-secret"
	DefaultBotName   = "Fake Teams Bot"
	DefaultRegion    = "amer"
	// Scope is the only scope the token endpoint accepts.
	Scope = "https://api.botframework.com/.default"
)

// Config configures a Server. The zero value serves an empty population
// with the documented Teams rate limits, no latency and no faults.
type Config struct {
	Listen     string // default "127.0.0.1:0"
	AppID      string // accepted client_id, default DefaultAppID
	AppSecret  string // accepted client_secret, default DefaultAppSecret
	BotName    string // bot name in exported references
	Population []Conversation
	TokenTTL   time.Duration // default 1h
	// TokenPrefix starts every issued access token, so that a test can
	// look for tokens in logs, stores and reports.
	TokenPrefix string
	// Limits are the rate limits; nil means DefaultLimits().
	Limits *Limits
	// Latency is the median added latency of connector answers (0: none);
	// the delay is log-normal with LatencySigma (default 0.8), so it has a
	// long tail.
	Latency      time.Duration
	LatencySigma float64
	Faults       Faults
	// StallFor is how long a stalled answer hangs (default 60 s); a stall
	// ends early when the client gives up or the server closes.
	StallFor time.Duration
	// ArrivalJitter delays each connector request by a uniform draw in
	// [0, ArrivalJitter) before it reaches the service's door, where it is
	// counted against the rate limits: network jitter between client and
	// service. 0: none.
	ArrivalJitter time.Duration
	// Seed seeds latency and fault draws.
	Seed uint64
	Now  func() time.Time // default time.Now
	// Scopes are the scopes the token service issues tokens for (default
	// just Scope); each token records its audience (TokenInfo), and the
	// connector routes accept only ConnectorAudience.
	Scopes []string
	// Entra configures certificates, federated credentials, tenants, the
	// TLS listener and the managed-identity endpoint (token.go).
	Entra Entra
	// Graph configures the simulated Microsoft Graph (graph.go).
	Graph Graph
}

// Server is a running simulated Bot Connector and token endpoint.
type Server struct {
	cfg    Config
	limits Limits
	ln     net.Listener
	srv    *http.Server
	url    string
	done   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	rng      *mrand.Rand
	convs    map[string]*conv // by conversation id
	personal map[string]*conv // by tenant|user id and tenant|aad object id
	tokens   map[string]IssuedToken
	entra    *entraState
	tls      *tlsState
	tenants  map[string]*tenantState
	graph    *graphState // nil: Graph off
	stats    Stats
	cards    []Card // cards.go
}

type conv struct {
	Conversation
	cursor int         // next script step
	writes []time.Time // accepted writes within the longest window, newest last
	reads  []time.Time // accepted reads
	// Arrivals (throttled included) within the longest window, and the
	// busiest count seen in each window of Limits.ConversationWrites.
	seenWrites, seenReads []time.Time
	peakWrites, peakReads []int
}

type tenantState struct {
	accepted   []time.Time // connector requests let through in the last second
	seen       []time.Time // every connector request that arrived in the last second
	burstUntil time.Time   // injected 429 burst
	peak       TenantWindow
}

// Start validates cfg and serves the simulator until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.AppID == "" {
		cfg.AppID = DefaultAppID
	}
	if cfg.AppSecret == "" {
		cfg.AppSecret = DefaultAppSecret
	}
	if cfg.BotName == "" {
		cfg.BotName = DefaultBotName
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.LatencySigma <= 0 {
		cfg.LatencySigma = 0.8
	}
	if cfg.StallFor <= 0 {
		cfg.StallFor = 60 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ArrivalJitter < 0 {
		return nil, fmt.Errorf("arrival jitter %v is negative", cfg.ArrivalJitter)
	}
	if err := cfg.Faults.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		limits:   DefaultLimits(),
		done:     make(chan struct{}),
		rng:      mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x5851f42d4c957f2d)),
		convs:    make(map[string]*conv, len(cfg.Population)),
		personal: make(map[string]*conv),
		tokens:   make(map[string]IssuedToken),
		tenants:  make(map[string]*tenantState),
		stats:    newStats(),
	}
	if cfg.Limits != nil {
		s.limits = *cfg.Limits
	}
	for i, c := range cfg.Population {
		if c.State == "" {
			c.State = StateActive
		}
		if c.Region == "" {
			c.Region = DefaultRegion
		}
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("population entry %d: %w", i, err)
		}
		if _, dup := s.convs[c.ConversationID]; dup {
			return nil, fmt.Errorf("population entry %d: duplicate conversation id %q", i, c.ConversationID)
		}
		cv := &conv{Conversation: c}
		s.convs[c.ConversationID] = cv
		if c.ConversationType == blockreport.ConversationPersonal {
			s.personal[c.TenantID+"|"+c.UserID] = cv
			if c.AADObjectID != "" {
				s.personal[c.TenantID+"|"+c.AADObjectID] = cv
			}
		}
	}
	if err := s.initEntra(); err != nil {
		return nil, err
	}
	if err := s.initGraph(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if err := s.startTLS(); err != nil {
		ln.Close()
		return nil, err
	}
	s.ln = ln
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed after Close.
	return s, nil
}

// URL is the base URL of the server, http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// ServiceURL is the service URL of region ("amer", "emea", "teams", "gcc",
// ...), with a trailing slash as Teams sends it.
func (s *Server) ServiceURL(region string) string {
	if region == "" {
		region = DefaultRegion
	}
	return s.url + "/" + region + "/"
}

// TokenURL is the token endpoint for tenant ("botframework.com" for a
// multi-tenant bot).
func (s *Server) TokenURL(tenant string) string {
	return s.url + "/" + tenant + "/oauth2/v2.0/token"
}

// Close stops the server, ends stalled answers and waits for every handler
// to return.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	err := errors.Join(s.srv.Close(), s.tls.srv.Close())
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("close faketeams server: %w", err)
	}
	return nil
}

// SetState moves a conversation to st (and restarts its script). Unknown
// conversation ids are ignored.
func (s *Server) SetState(conversationID string, st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.convs[conversationID]; ok {
		c.State = st
		c.cursor = 0
	}
}

// Population returns a copy of the conversations with their current states.
func (s *Server) Population() []Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Conversation, 0, len(s.cfg.Population))
	for _, c := range s.cfg.Population {
		out = append(out, s.convs[c.ConversationID].Conversation)
	}
	return out
}

// References returns the population as references `blockreport import`
// would store, pointing at this server's service URLs.
func (s *Server) References() []blockreport.Reference {
	pop := s.Population()
	out := make([]blockreport.Reference, 0, len(pop))
	for _, c := range pop {
		raw, err := json.Marshal(s.conversationReference(c))
		if err != nil {
			raw = nil // cannot happen: plain strings
		}
		out = append(out, blockreport.Reference{
			TenantID:         c.TenantID,
			UserID:           c.UserID,
			AADObjectID:      c.AADObjectID,
			UserName:         c.UserName,
			Email:            c.Email,
			ConversationID:   c.ConversationID,
			ConversationType: c.ConversationType,
			TeamID:           c.TeamID,
			ServiceURL:       s.ServiceURL(c.Region),
			BotID:            "28:" + s.cfg.AppID,
			ChannelID:        "msteams",
			Locale:           "en-US",
			Raw:              raw,
		})
	}
	return out
}

// WriteReferences writes the population as JSON Lines of botbuilder
// ConversationReference objects (user.email carries the email; channel
// conversations carry channelData.team.id).
func (s *Server) WriteReferences(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, c := range s.Population() {
		if err := enc.Encode(s.conversationReference(c)); err != nil {
			return fmt.Errorf("write reference of conversation %q: %w", c.ConversationID, err)
		}
	}
	return nil
}

func (s *Server) conversationReference(c Conversation) conversationReference {
	r := conversationReference{
		ActivityID: activityIDFor(c.ConversationID),
		User:       referenceAccount{ID: c.UserID, Name: c.UserName, AADObjectID: c.AADObjectID, Email: c.Email},
		Bot:        referenceAccount{ID: "28:" + s.cfg.AppID, Name: s.cfg.BotName},
		Conversation: referenceConversation{
			ID:               c.ConversationID,
			ConversationType: string(c.ConversationType),
			TenantID:         c.TenantID,
			IsGroup:          c.ConversationType != blockreport.ConversationPersonal,
		},
		ChannelID:  "msteams",
		Locale:     "en-US",
		ServiceURL: s.ServiceURL(c.Region),
	}
	if c.ConversationType == blockreport.ConversationChannel && c.TeamID != "" {
		r.ChannelData = &referenceChannelData{}
		r.ChannelData.Team = &struct {
			ID string `json:"id"`
		}{ID: c.TeamID}
		r.ChannelData.Tenant.ID = c.TenantID
	}
	return r
}

// activityIDFor derives a stable 13-digit activity id from a conversation id.
func activityIDFor(id string) string {
	var h uint64 = 1469598103934665603
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	return fmt.Sprintf("%013d", 1_500_000_000_000+h%200_000_000_000)
}

// Route names used in Stats.
const (
	RouteToken              = "token"
	RouteCreateConversation = "create_conversation"
	RouteSendActivity       = "send_activity"
	RouteGetMember          = "get_member"
	RoutePagedMembers       = "paged_members"
	RouteStats              = "stats"
	RouteUnknown            = "unknown"
)

// request is one parsed connector request.
type request struct {
	route    string
	prefix   string // first path segment of the service URL ("amer", "gcc", ...)
	convID   string
	memberID string
	write    bool
}

// parsePath routes by hand: conversation ids contain ':', '@' and ';'.
func parsePath(escaped string) (request, bool) {
	segs := strings.Split(strings.Trim(escaped, "/"), "/")
	for i, seg := range segs {
		if seg != "v3" || i+1 >= len(segs) || segs[i+1] != "conversations" {
			continue
		}
		req := request{}
		if i > 0 {
			p, err := url.PathUnescape(segs[0])
			if err != nil {
				return request{}, false
			}
			req.prefix = p
		}
		rest := segs[i+2:]
		unesc := make([]string, len(rest))
		for j, r := range rest {
			u, err := url.PathUnescape(r)
			if err != nil {
				return request{}, false
			}
			unesc[j] = u
		}
		switch {
		case len(rest) == 0:
			req.route, req.write = RouteCreateConversation, true
		case len(rest) == 2 && unesc[1] == "activities", len(rest) == 3 && unesc[1] == "activities":
			req.route, req.write, req.convID = RouteSendActivity, true, unesc[0]
		case len(rest) == 3 && unesc[1] == "members":
			req.route, req.convID, req.memberID = RouteGetMember, unesc[0], unesc[2]
		case len(rest) == 2 && unesc[1] == "pagedmembers":
			req.route, req.convID = RoutePagedMembers, unesc[0]
		default:
			return request{}, false
		}
		if req.convID == "" && req.route != RouteCreateConversation {
			return request{}, false
		}
		return req, true
	}
	return request{}, false
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	path := r.URL.EscapedPath()
	switch {
	case path == "/_fake/stats":
		s.serveStats(w, r)
		return
	case s.serveEntra(w, r, path), s.serveGraph(w, r, path):
		return
	}
	req, ok := parsePath(path)
	if !ok {
		s.reply(w, RouteUnknown, "", "", http.StatusNotFound, envelope("NotFound", "No route for "+r.Method+" "+path), nil)
		return
	}
	want := http.MethodGet
	if req.write {
		want = http.MethodPost
	}
	if r.Method != want {
		s.reply(w, req.route, "", "", http.StatusMethodNotAllowed, envelope("MethodNotAllowed", "Use "+want), http.Header{"Allow": {want}})
		return
	}
	s.serveConnector(w, r, req)
}

// reply writes an answer and counts it.
func (s *Server) reply(w http.ResponseWriter, route, tenant, convID string, status int, body []byte, h http.Header) {
	s.mu.Lock()
	s.stats.count(route, fmt.Sprint(status), convID)
	if status == http.StatusTooManyRequests {
		s.stats.Throttled++
	}
	s.mu.Unlock()
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("X-Correlating-OperationId", randomHex(8))
	if len(body) > 0 {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck // the client may be gone
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	st := s.Stats()
	b, _ := json.MarshalIndent(st, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.Write(b) //nolint:errcheck
}

// createParams is the part of ConversationParameters the fake reads.
type createParams struct {
	IsGroup  bool   `json:"isGroup"`
	TenantID string `json:"tenantId"`
	Members  []struct {
		ID string `json:"id"`
	} `json:"members"`
	ChannelData struct {
		Tenant struct {
			ID string `json:"id"`
		} `json:"tenant"`
	} `json:"channelData"`
}

type activity struct {
	Type string `json:"type"`
}

func (s *Server) serveConnector(w http.ResponseWriter, r *http.Request, req request) {
	w, counted := s.trackMessage(w, r, req)
	defer counted()
	// The request reaches the service's door after the network's jitter;
	// there it is authorised, parsed, counted and limited at once, and only
	// then processed for the simulated latency (limits.go, doc.go).
	if !s.sleep(r.Context(), s.arrivalJitter()) {
		return
	}
	status, body, hdr, tenant, c := s.door(r, req)
	if status == http.StatusTooManyRequests {
		s.reply(w, req.route, tenant, c.id(), status, body, hdr) // the limiter answers at once
		return
	}
	if !s.sleep(r.Context(), s.latency()) {
		return
	}
	if status != 0 {
		s.reply(w, req.route, tenant, c.id(), status, body, hdr)
		return
	}
	if s.fault(w, r, req, tenant, c.ConversationID) {
		return
	}
	status, body, hdr = s.answer(req, c)
	s.reply(w, req.route, tenant, c.ConversationID, status, body, hdr)
}

// door decides what happens to a connector request when it arrives: an
// answer given without processing (401, 400, 404, 413, the 403 for a user
// without the app, 429), or status 0 with the tenant and conversation
// to process.
func (s *Server) door(r *http.Request, req request) (status int, body []byte, h http.Header, tenant string, c *conv) {
	if !s.authorized(r) {
		return http.StatusUnauthorized, envelope("Unauthorized", "Authorization has been denied for this request."), nil, "", nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return http.StatusBadRequest, envelope("Bad Argument", "Could not read the request body."), nil, "", nil
	}
	switch req.route {
	case RouteCreateConversation:
		var p createParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return http.StatusBadRequest, envelope("Bad Argument", "Invalid conversation parameters: "+err.Error()), nil, "", nil
		}
		tenant = p.ChannelData.Tenant.ID
		if tenant == "" {
			tenant = p.TenantID
		}
		if tenant == "" || len(p.Members) != 1 || p.Members[0].ID == "" || p.IsGroup {
			return http.StatusBadRequest, envelope("Bad Argument", "A 1:1 conversation needs a tenant id and exactly one member."), nil, tenant, nil
		}
		s.mu.Lock()
		c = s.personal[tenant+"|"+p.Members[0].ID]
		s.mu.Unlock()
		if c == nil {
			// The documented answer for a user without the app installed in
			// personal scope (send-proactive-messages.md).
			if st, b, h := s.admit(req, tenant, nil); st != 0 {
				return st, b, h, tenant, nil
			}
			return http.StatusForbidden, envelope("ForbiddenOperationException", "Bot isn't installed in user's personal scope"), nil, tenant, nil
		}
	default:
		c = s.lookup(req.convID)
		if c == nil {
			return http.StatusNotFound, envelope("ConversationNotFound", "Conversation not found."), nil, "", nil
		}
		tenant = c.TenantID
		if req.route == RouteSendActivity {
			var a activity
			if err := json.Unmarshal(raw, &a); err != nil || (a.Type != "message" && a.Type != "typing") {
				msg := "Invalid activity: type must be message or typing"
				if err != nil {
					msg = "Invalid activity: " + err.Error()
				}
				return http.StatusBadRequest, envelope("Bad Argument", msg), nil, tenant, c
			}
			if utf16Size(raw) > MaxMessageBytes {
				return http.StatusRequestEntityTooLarge, envelope("MessageSizeTooBig", codeMessages["MessageSizeTooBig"]), nil, tenant, c
			}
		}
	}
	st, b, hd := s.admit(req, tenant, c)
	return st, b, hd, tenant, c
}

// id is the conversation id, "" for none.
func (c *conv) id() string {
	if c == nil {
		return ""
	}
	return c.ConversationID
}

// lookup finds a conversation by id, ignoring a ";messageid=..." suffix.
func (s *Server) lookup(id string) *conv {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.convs[id]; ok {
		return c
	}
	if base, _, ok := strings.Cut(id, ";"); ok {
		return s.convs[base]
	}
	return nil
}

// answer is the conversation's state-driven answer; it consumes one step of
// a script.
func (s *Server) answer(req request, c *conv) (int, []byte, http.Header) {
	s.mu.Lock()
	cv := c.Conversation
	st := cv.State
	var step Step
	if st == StateScripted {
		i := min(c.cursor, len(cv.Script)-1)
		step = cv.Script[i]
		if c.cursor < len(cv.Script) {
			c.cursor++
		}
		st = step.State
	}
	s.mu.Unlock()

	if cv.GCC && req.prefix != "gcc" {
		return http.StatusForbidden, envelope("InvalidBotApiHost",
			"Invalid bot api host. For GCC tenants, please call https://smba.infra.gcc.teams.microsoft.com."), nil
	}
	if st == "" {
		var h http.Header
		if step.RetryAfter > 0 {
			h = http.Header{"Retry-After": {fmt.Sprint(step.RetryAfter)}}
		}
		body := []byte(step.Body)
		if step.Body == "" && step.Code != "" {
			body = envelope(step.Code, codeMessages[step.Code])
		}
		if step.Status/100 == 2 && len(body) == 0 {
			return s.success(req, cv)
		}
		return step.Status, body, h
	}
	return s.stateAnswer(req, cv, st)
}

func (s *Server) stateAnswer(req request, cv Conversation, st State) (int, []byte, http.Header) {
	switch st {
	case StateActive:
		return s.success(req, cv)
	case StateBlocked:
		if !req.write {
			// A block stops writes; the user stays in the roster (the
			// README's model, as in Microsoft's uninstall detection).
			return s.success(req, cv)
		}
		return http.StatusForbidden, blockedBody(cv.BlockShape), nil
	case StateUninstalled:
		return http.StatusForbidden, envelope("BotNotInConversationRoster", codeMessages["BotNotInConversationRoster"]), nil
	case StateAdminDisabled:
		if req.route == RouteCreateConversation {
			return s.success(req, cv)
		}
		return http.StatusForbidden, envelope("BotDisabledByAdmin", codeMessages["BotDisabledByAdmin"]), nil
	case StateDeleted:
		return http.StatusNotFound, envelope("ConversationNotFound", codeMessages["ConversationNotFound"]), nil
	case StateNotInstalled:
		return http.StatusForbidden, envelope("ForbiddenOperationException", codeMessages["ForbiddenOperationException"]), nil
	case StateForbiddenEmpty:
		return http.StatusForbidden, nil, nil
	case StateForbiddenOther:
		return http.StatusForbidden, envelope("NotEnoughPermissions", codeMessages["NotEnoughPermissions"]), nil
	}
	return http.StatusInternalServerError, envelope("ServiceError", "faketeams: unknown state "+string(st)), nil
}

func (s *Server) success(req request, cv Conversation) (int, []byte, http.Header) {
	var v any
	status := http.StatusOK
	switch req.route {
	case RouteCreateConversation:
		status = http.StatusCreated
		v = map[string]string{"id": cv.ConversationID}
	case RouteSendActivity:
		status = http.StatusCreated
		v = map[string]string{"id": fmt.Sprintf("%d", s.cfg.Now().UnixMilli())}
	case RouteGetMember:
		if !cv.isMember(req.memberID) {
			return http.StatusNotFound, envelope("MemberNotFoundInConversation", "The member was not found in the conversation."), nil
		}
		v = cv.member()
	case RoutePagedMembers:
		v = map[string]any{"members": []any{cv.member()}}
	}
	b, _ := json.Marshal(v)
	return status, b, nil
}

func (c Conversation) isMember(id string) bool {
	return id != "" && (id == c.UserID || id == c.AADObjectID || strings.EqualFold(id, c.Email))
}

// member is the conversation's user as a TeamsChannelAccount.
func (c Conversation) member() map[string]string {
	given, sur, _ := strings.Cut(c.UserName, " ")
	return map[string]string{
		"id": c.UserID, "name": c.UserName, "aadObjectId": c.AADObjectID, "objectId": c.AADObjectID,
		"givenName": given, "surname": sur, "email": c.Email, "userPrincipalName": c.Email,
		"tenantId": c.TenantID, "userRole": "user",
	}
}

// codeMessages are the documented messages of each error code.
var codeMessages = map[string]string{
	"BotDisabledByAdmin":          "The tenant admin disabled this bot",
	"BotNotInConversationRoster":  "The bot is not part of the conversation roster.",
	"ConversationBlockedByUser":   "User blocked the conversation with the bot.",
	"ForbiddenOperationException": "Bot isn't installed in user's personal scope",
	"NotEnoughPermissions":        "The bot does not have enough permissions to perform this operation.",
	"ConversationNotFound":        "Conversation not found.",
	"PreconditionFailed":          "Precondition failed, please try again.",
	"Throttled":                   "Too many requests.",
	"ServiceError":                "Internal server error",
	"MessageSizeTooBig":           "Message size too large.",
	"BotDisabledByUser":           "The user disabled this bot.",
	"TenantNoPermission":          "The tenant does not permit this operation.",
	"CapabilityOverride":          "The operation is not allowed by a capability override.",
}

// envelope is the standard Bot Connector error body.
func envelope(code, message string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	return b
}

// blockedBody is the 403 body of a blocked conversation in shape.
func blockedBody(shape BlockShape) []byte {
	nl := ""
	switch shape {
	case BlockTeamsCRLF:
		nl = "\r\n"
	case BlockTeamsLF:
		nl = "\n"
	default:
		return envelope("ConversationBlockedByUser", codeMessages["ConversationBlockedByUser"])
	}
	inner := "{" + nl +
		`  "subCode": "MessageWritesBlocked",` + nl +
		`  "details": "Thread is blocked from message writes.",` + nl +
		`  "errorCode": null,` + nl +
		`  "errorSubCode": null` + nl + "}"
	b, _ := json.Marshal(map[string]any{"errorCode": 209, "message": inner})
	return b
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// sleep waits d, or less when ctx ends or the server closes; it reports
// whether the full wait happened.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}
