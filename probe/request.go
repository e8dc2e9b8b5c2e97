package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// Reasons of results the engine gives without asking the connector.
const (
	reasonOptedOut       = "OptedOut"
	reasonBadServiceURL  = "BadServiceURL"
	reasonHostNotAllowed = "HostNotAllowed"
	reasonNoConversation = "NoConversation"
	reasonNoTenant       = "NoTenant"
	reasonTimeout        = "Timeout"
	reasonNetwork        = "NetworkError"
	reasonBadResponse    = "BadResponse"
)

const maxBody = 64 << 10 // bytes of an answer read for classification

// serviceBase parses a service URL and makes sure it ends in "/".
func serviceBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("service URL does not parse")
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("service URL %q is not a plain absolute URL", sanitize(raw, 100))
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	return u, nil
}

// serviceBase is serviceBase(raw), remembered per service URL: a run has
// a handful of them for millions of references. Each caller gets its own
// copy (a GCC retry replaces a probe's base, never the shared one).
func (p *Prober) serviceBase(raw string) (*url.URL, error) {
	if v, ok := p.bases.Load(raw); ok {
		u := *v.(*url.URL)
		return &u, nil
	}
	u, err := serviceBase(raw)
	if err != nil {
		return nil, err
	}
	if n := p.nbases.Add(1); n <= maxBases {
		p.bases.Store(raw, u)
	}
	c := *u
	return &c, nil
}

// maxBases bounds the service URLs remembered (references from a hostile
// store could each carry another).
const maxBases = 1024

// join appends API path segments (each escaped as one path segment) to a
// service base URL, without doubling the slash.
func join(base *url.URL, query string, segs ...string) *url.URL {
	var b strings.Builder
	b.WriteString(base.EscapedPath())
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(url.PathEscape(s))
	}
	u := *base
	u.RawQuery = query
	p, err := url.PathUnescape(b.String())
	if err != nil {
		p = b.String()
	}
	u.Path, u.RawPath = p, b.String()
	return &u
}

// precheck decides the references that get a result without any request:
// opted out, or invalid (bad or disallowed service URL, missing ids). When
// the reference is to be probed it returns its parsed service base URL.
func (p *Prober) precheck(ref blockreport.Reference) (blockreport.Result, *url.URL, bool) {
	r := blockreport.Result{ReferenceID: ref.ID, ProbedAt: p.cfg.Now()}
	invalid := func(reason, detail string) (blockreport.Result, *url.URL, bool) {
		r.Status, r.Reason, r.Detail = blockreport.StatusInvalid, reason, sanitize(detail, maxDetail)
		return r, nil, false
	}
	if ref.OptedOut {
		r.Status, r.Reason, r.Detail = blockreport.StatusOptedOut, reasonOptedOut, "marked opted out; never probed"
		return r, nil, false
	}
	base, err := p.serviceBase(ref.ServiceURL)
	if err != nil {
		return invalid(reasonBadServiceURL, err.Error())
	}
	if err := p.allow.check(base); err != nil {
		return invalid(reasonHostNotAllowed, err.Error()+"; nothing was sent")
	}
	if ref.TenantID == "" {
		return invalid(reasonNoTenant, "reference has no tenant id")
	}
	if ref.ConversationID == "" && !canCreate(ref) {
		return invalid(reasonNoConversation, "no conversation id, and not a personal reference with a user id to create one")
	}
	return r, base, true
}

func canCreate(ref blockreport.Reference) bool {
	return ref.TenantID != "" && isPersonal(ref)
}

// isPersonal reports whether ref is a 1:1 chat with a known user (a reference
// without a type is taken as personal, as botbuilder omits it there).
func isPersonal(ref blockreport.Reference) bool {
	return ref.UserID != "" && (ref.ConversationType == "" || ref.ConversationType == blockreport.ConversationPersonal)
}

func (p *Prober) botID(ref blockreport.Reference) string {
	if ref.BotID != "" {
		return ref.BotID
	}
	return "28:" + p.cfg.AppID
}

// call is one logical request (retried as needed).
type call struct {
	method string
	query  string
	segs   []string
	body   []byte
	once   bool // a message: deliver at most once (see deliveryUnknown)
}

// outcome is the last answer to a call.
type outcome struct {
	status   int
	body     []byte
	header   http.Header
	err      error // network error or timeout of the last attempt
	attempts int
	drop     bool // give no result: the run stopped (fatal error or cancellation)
	written  bool // once calls: some of the last request reached the connection
	unknown  bool // once calls: the message may have been delivered; never resent
}

// probe runs the probe of one reference whose precheck passed. ok is false
// when the run stopped before the probe had an answer: the reference then
// gets no result and the next run probes it again.
func (s *session) probe(ref blockreport.Reference, base *url.URL, pc *pacer) (blockreport.Result, bool) {
	p := s.p
	start := time.Now()
	res := blockreport.Result{RunID: s.runID, ReferenceID: ref.ID}
	attempts := 0
	conv := ref.ConversationID
	paced := true // the dispatcher waited for the first request

	finish := func(o outcome) (blockreport.Result, bool) {
		res.Attempts = attempts
		res.Latency = time.Since(start)
		res.ProbedAt = p.cfg.Now()
		res.HTTPStatus = o.status
		switch {
		case o.unknown:
			res.Status, res.Reason, res.Detail = blockreport.StatusFailed, ReasonDeliveryUnknown, unknownDetail(o)
		case o.err != nil:
			res.Status = blockreport.StatusFailed
			res.Reason, res.Detail = netReason(o.err)
		default:
			res.Status, res.Reason, res.Detail = Classify(o.status, o.body)
			if o.status >= 300 && o.status < 400 {
				res.Detail = "redirect not followed"
			}
		}
		return res, true
	}

	if conv == "" {
		body, _ := json.Marshal(map[string]any{
			"isGroup":     false,
			"bot":         map[string]any{"id": p.botID(ref)},
			"members":     []any{map[string]any{"id": ref.UserID}},
			"tenantId":    ref.TenantID,
			"channelData": map[string]any{"tenant": map[string]any{"id": ref.TenantID}},
		})
		o := s.send(&base, pc, paced, call{method: http.MethodPost, segs: []string{"v3", "conversations"}, body: body})
		attempts += o.attempts
		paced = false
		if o.drop {
			return res, false
		}
		if o.err != nil || o.status < 200 || o.status >= 300 {
			return finish(o)
		}
		var cr struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(o.body, &cr) != nil || cr.ID == "" {
			r, ok := finish(o)
			r.Status, r.Reason, r.Detail = blockreport.StatusFailed, reasonBadResponse, "create conversation answered without a conversation id"
			return r, ok
		}
		conv = cr.ID
		res.NewConversationID = conv
	}

	var c call
	switch p.cfg.Mode {
	case ModeMembers:
		c.method = http.MethodGet
		if isPersonal(ref) {
			c.segs = []string{"v3", "conversations", conv, "members", ref.UserID}
		} else {
			c.segs = []string{"v3", "conversations", conv, "pagedmembers"}
			c.query = "pageSize=1"
		}
	default:
		c.method = http.MethodPost
		c.segs = []string{"v3", "conversations", conv, "activities"}
		c.body = p.activity(ref, conv)
		c.once = p.cfg.Mode == ModeMessage
	}
	o := s.send(&base, pc, paced, c)
	attempts += o.attempts
	if o.drop {
		return res, false
	}
	return finish(o)
}

// activity is the JSON body of the typing or message activity for ref,
// filled from the reference as the Bot Framework SDK does
// (applyConversationReference: from = bot, recipient = user, conversation).
func (p *Prober) activity(ref blockreport.Reference, conv string) []byte {
	if p.cfg.Mode != ModeMessage {
		return typingActivity(ref, p.botID(ref), conv)
	}
	a := map[string]any{}
	if p.cfg.Mode == ModeMessage {
		for k, v := range p.message {
			a[k] = v
		}
		a["type"] = "message"
	} else {
		a["type"] = "typing"
	}
	a["channelId"] = "msteams"
	a["from"] = map[string]any{"id": p.botID(ref)}
	if ref.UserID != "" {
		a["recipient"] = map[string]any{"id": ref.UserID}
	}
	cv := map[string]any{"id": conv, "tenantId": ref.TenantID}
	if ref.ConversationType != "" {
		cv["conversationType"] = string(ref.ConversationType)
	}
	a["conversation"] = cv
	if ref.Locale != "" {
		if _, ok := a["locale"]; !ok {
			a["locale"] = ref.Locale
		}
	}
	b, _ := json.Marshal(a)
	return b
}

// activityAccount and activityConversation are the accounts and the
// conversation of an activity; with typingBody their fields are in the
// order json.Marshal gives a map, so both encodings are the same bytes.
type activityAccount struct {
	ID string `json:"id"`
}

type activityConversation struct {
	ConversationType string `json:"conversationType,omitempty"`
	ID               string `json:"id"`
	TenantID         string `json:"tenantId"`
}

type typingBody struct {
	ChannelID    string               `json:"channelId"`
	Conversation activityConversation `json:"conversation"`
	From         activityAccount      `json:"from"`
	Locale       string               `json:"locale,omitempty"`
	Recipient    *activityAccount     `json:"recipient,omitempty"`
	Type         string               `json:"type"`
}

// typingActivity is the typing activity for ref, encoded from a struct
// (a map costs the engine a tenth of its time at zero latency).
func typingActivity(ref blockreport.Reference, botID, conv string) []byte {
	a := typingBody{ChannelID: "msteams", From: activityAccount{botID}, Locale: ref.Locale, Type: "typing",
		Conversation: activityConversation{string(ref.ConversationType), conv, ref.TenantID}}
	if ref.UserID != "" {
		a.Recipient = &activityAccount{ref.UserID}
	}
	b, _ := json.Marshal(a)
	return b
}

// send makes one call with retries. paced tells whether the tenant's pacer
// was already waited on for the first attempt. On 403 InvalidBotApiHost the
// call is retried once against the GCC service URL, which then replaces
// *base for later calls of the same probe.
func (s *session) send(base **url.URL, pc *pacer, paced bool, c call) outcome {
	p := s.p
	var o outcome
	gccTried, renewed := false, false
	held := false // a connection slot kept for the retry after a 401
	for {
		if !paced {
			if err := sleepUntil(s.dispatch, time.Now, pc.reserve()); err != nil {
				o.drop = true
				return o
			}
		}
		paced = false
		u := join(*base, c.query, c.segs...)
		if err := p.allow.check(u); err != nil { // defence in depth
			s.fail(fmt.Errorf("refusing to send the token to %q: %w", u.Host, err))
			o.drop = true
			return o
		}
		// A connection slot, then the token (read holding the slot: one
		// fetched before a wait could have been renewed meanwhile), then,
		// right before the request goes out, the pacer's say.
		tok, err := s.acquire(pc, held)
		held = false
		if err != nil {
			if nt, ok := err.(noToken); ok {
				s.fail(tokenStops(nt.err))
			}
			o.drop = true
			return o
		}
		sentAt := time.Now()
		o.status, o.body, o.header, o.written, o.err = s.do(u, c, tok)
		o.attempts++
		if o.err == nil && o.status == http.StatusUnauthorized && !renewed {
			// A revoked or rolled-over token: fetch a fresh one (from no
			// cache) and retry this request once, at once, keeping the
			// slot (a token request, no sleep) when the pacer allows.
			renewed = true
			if _, err := p.cred.Renew(s.inflight, "", p.scope, tok); err != nil {
				<-s.conns
				s.fail(tokenStops(err))
				o.drop = true
				return o
			}
			held, paced = true, true // the slot goes to the retry
			continue
		}
		if o.err == nil && o.status == http.StatusUnauthorized {
			// Stop the run before the slot is free: no request may start
			// after a fresh token was refused too.
			_, reason, detail := Classify(o.status, o.body)
			s.fail(fmt.Errorf("%w, also a freshly fetched one: %s %s (%s: %s): check --app-id, the credential, --cloud and that the bot is registered for Teams; the run stops (%w)",
				ErrUnauthorized, c.method, u.Host, reason, detail, ErrInterrupted))
			<-s.conns
			o.drop = true
			return o
		}
		<-s.conns
		if c.once && deliveryUnknown(o) {
			o.unknown = true // not retried, not dropped: see once.go
			return o
		}

		if o.err != nil {
			if s.inflight.Err() != nil { // cut off by the grace deadline
				o.drop = true
				return o
			}
			if o.attempts < p.cfg.Attempts {
				if sleep(s.dispatch, p.backoff(o.attempts)) != nil {
					o.drop = true
					return o
				}
				continue
			}
			return o
		}
		switch {
		case o.status == http.StatusForbidden && !gccTried && p.gcc != nil && (*base).String() != p.gcc.String():
			if _, reason, _ := Classify(o.status, o.body); reason == codeInvalidBotAPIHost {
				gccTried = true
				*base = p.gcc
				continue
			}
		case o.status == http.StatusTooManyRequests:
			d, ok := retryAfter(o.header, p.cfg.Now(), p.cfg.MaxRetryAfter)
			if !ok {
				d = min(p.backoff(o.attempts), p.cfg.MaxRetryAfter)
			}
			pc.throttled(sentAt, d)
		}
		if !retryable(o.status) {
			// Any definite answer (a 403 Blocked as much as a 200) shows the
			// tenant is not throttled: its rate recovers.
			pc.ok()
			return o
		}
		if o.attempts >= p.cfg.Attempts {
			return o
		}
		if o.status != http.StatusTooManyRequests { // a 429 pause is in the pacer's schedule
			if sleep(s.dispatch, p.backoff(o.attempts)) != nil {
				o.drop = true
				return o
			}
		}
	}
}

// noToken is a token failure in acquire.
type noToken struct{ err error }

func (e noToken) Error() string { return e.err.Error() }
func (e noToken) Unwrap() error { return e.err }

// acquire takes a connection slot (unless held), the token and, holding
// them, the pacer's send time; when the pacer refuses (a pause began, or
// the window is full) it gives the slot back before it waits: nothing
// sleeps holding a slot. It returns holding the slot, or an error without
// it: the run stopped (no request may start), or a noToken.
func (s *session) acquire(pc *pacer, held bool) (string, error) {
	p := s.p
	for {
		if !held {
			select {
			case s.conns <- struct{}{}:
			case <-s.dispatch.Done():
				return "", s.dispatch.Err()
			}
		}
		held = false
		// No new request once the run stopped (first 401, token or store
		// failure, cancellation); in-flight ones were already sent.
		if err := s.dispatch.Err(); err != nil {
			<-s.conns
			return "", err
		}
		tok, err := p.cred.Token(s.inflight, "", p.scope)
		if err != nil {
			<-s.conns
			return "", noToken{err}
		}
		d, paused := pc.take()
		if d == 0 {
			return tok, nil
		}
		<-s.conns
		if paused {
			err = sleepUntil(s.dispatch, time.Now, pc.reserve())
		} else {
			err = sleep(s.dispatch, d)
		}
		if err != nil {
			return "", err
		}
	}
}

func retryable(status int) bool {
	switch status {
	case http.StatusPreconditionFailed, http.StatusTooManyRequests,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// backoff is the exponential backoff before retry n (n >= 1), with jitter
// in [d/2, d).
func (p *Prober) backoff(n int) time.Duration {
	d := p.cfg.BackoffBase << min(n-1, 20)
	if d > p.cfg.BackoffMax || d <= 0 {
		d = p.cfg.BackoffMax
	}
	return d/2 + time.Duration(p.cfg.Rand()*float64(d/2))
}

// retryAfter reads a Retry-After header (seconds or an HTTP date) as a
// pause in [0, maxPause]. The value is capped before it becomes a Duration,
// so a huge or infinite number cannot overflow into a negative pause. A date
// in the past means no pause; ok is false when there is no usable value
// (absent, negative, NaN, garbage).
func retryAfter(h http.Header, now time.Time, maxPause time.Duration) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if !(n >= 0) { // negative or NaN
			return 0, false
		}
		if n >= maxPause.Seconds() {
			return maxPause, true
		}
		return time.Duration(n * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		// Sub saturates instead of overflowing for dates far away.
		return min(max(t.Sub(now), 0), maxPause), true
	}
	return 0, false
}

// do sends one request with the bearer token, which is set here and only
// here, after the URL passed the allow-list. For a once call, written tells
// whether any of the request reached the connection, and Go's transport is
// kept from resending it on its own.
func (s *session) do(u *url.URL, c call, token string) (status int, body []byte, h http.Header, written bool, err error) {
	ctx, cancel := context.WithTimeout(s.inflight, s.p.cfg.Timeout)
	defer cancel()
	var wt writeTrace
	if c.once {
		ctx = httptrace.WithClientTrace(ctx, wt.trace())
	}
	status, body, h, err = s.roundTrip(ctx, u, c, token)
	return status, body, h, c.once && wt.written(), err
}

func (s *session) roundTrip(ctx context.Context, u *url.URL, c call, token string) (int, []byte, http.Header, error) {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u.String(), body)
	if err != nil {
		return 0, nil, nil, err
	}
	if c.once {
		// Without GetBody the transport cannot rewind the body, so it never
		// retries the POST by itself (HTTP/1 after a dead keep-alive
		// connection, HTTP/2 after GOAWAY or a stream error): whether to
		// send again is decided by deliveryUnknown alone.
		req.GetBody = nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", s.p.cfg.UserAgent)
	req.Header.Set("Accept", "application/json")
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := s.p.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4*maxBody)) // keep the connection reusable
	if err != nil && len(b) == 0 {
		return 0, nil, nil, err
	}
	return resp.StatusCode, b, resp.Header, nil
}

// netReason names a transport failure without the URL (which is known from
// the reference) and without anything from the request headers.
func netReason(err error) (reason, detail string) {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return reasonTimeout, sanitize("request timed out: "+err.Error(), maxDetail)
	}
	return reasonNetwork, sanitize(err.Error(), maxDetail)
}
