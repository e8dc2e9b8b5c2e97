package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	blockreport "github.com/blockreport/blockreport"
)

// Post sends one message activity (for example an Adaptive Card summary of
// a run) into the stored conversation of ref, through everything a probe
// goes through: the allow-list, the connector token (renewed once on a
// 401), the tenant's pacer, retries with backoff and Retry-After, and the
// GCC retry. Like message mode it delivers at most once: a request that may
// have reached the service is never sent again. activity holds the message
// fields (attachments, text, summary); Post fills in type, channel, sender
// and conversation. The Result says how the service answered (reachable,
// blocked, ...); err is set when nothing definite could be sent (the
// reference is not allowed, the token failed, ctx was cancelled).
func (p *Prober) Post(ctx context.Context, ref blockreport.Reference, activity map[string]any) (blockreport.Result, error) {
	if ref.ConversationID == "" {
		return blockreport.Result{}, errors.New("the reference has no conversation id")
	}
	pre, base, ok := p.precheck(ref)
	if !ok {
		return pre, fmt.Errorf("conversation %s cannot be posted to: %s: %s", ref.ConversationID, pre.Reason, pre.Detail)
	}
	a := map[string]any{}
	for k, v := range activity {
		a[k] = v
	}
	a["type"] = "message"
	a["channelId"] = "msteams"
	a["from"] = map[string]any{"id": p.botID(ref)}
	cv := map[string]any{"id": ref.ConversationID, "tenantId": ref.TenantID}
	if ref.ConversationType != "" {
		cv["conversationType"] = string(ref.ConversationType)
	}
	a["conversation"] = cv
	body, err := json.Marshal(a)
	if err != nil {
		return blockreport.Result{}, fmt.Errorf("encode the activity: %w", err)
	}

	dispatch, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{p: p, dispatch: dispatch, inflight: dispatch, cancel: cancel, conns: make(chan struct{}, 1)}
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	o := s.send(&base, p.pacer(ref.TenantID), false, call{method: http.MethodPost,
		segs: []string{"v3", "conversations", ref.ConversationID, "activities"}, body: body, once: true})
	res := blockreport.Result{ReferenceID: ref.ID, HTTPStatus: o.status, Attempts: o.attempts, ProbedAt: p.cfg.Now()}
	switch {
	case o.drop:
		if s.err != nil {
			return res, s.err
		}
		return res, fmt.Errorf("post to conversation %s: %w", ref.ConversationID, ctx.Err())
	case o.unknown:
		res.Status, res.Reason, res.Detail = blockreport.StatusFailed, ReasonDeliveryUnknown, unknownDetail(o)
	case o.err != nil:
		res.Status = blockreport.StatusFailed
		res.Reason, res.Detail = netReason(o.err)
	default:
		res.Status, res.Reason, res.Detail = Classify(o.status, o.body)
	}
	return res, nil
}
