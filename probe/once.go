package probe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// Message mode delivers at most once per conversation per run. This file
// holds the whole rule: which answers may be sent again, the durable claim
// made before a message goes out, and what a claim without an answer means.

// ReasonDeliveryUnknown is the reason of a failed message-mode result whose
// message may have been delivered: the request went out and no answer
// proved otherwise (a late answer, a reset after sending, 412, 5xx), or an
// earlier process claimed the conversation and died before recording the
// answer. It is never sent again automatically.
const ReasonDeliveryUnknown = "DeliveryUnknown"

// SendLog is what message mode needs of the store on top of Store: the
// durable record of messages being sent (implemented by *store.DB).
type SendLog interface {
	// ClaimSends records, committed before it returns, that refIDs are
	// about to be sent in runID, and returns those it claimed; one
	// claimed before (by anyone) is not returned.
	ClaimSends(ctx context.Context, runID int64, refIDs []int64, now time.Time) ([]int64, error)
	// ReleaseSends drops the claims of refIDs that have no result: their
	// message provably never went out.
	ReleaseSends(ctx context.Context, runID int64, refIDs []int64) error
}

// errNoSendLog is returned by a message-mode run on a store without a
// SendLog: it could not keep its at-most-once promise.
var errNoSendLog = errors.New("message mode needs a store that records sends before they go out")

// deliveryUnknown is the at-most-once rule: it reports whether the last
// attempt of a message may have delivered it while its answer does not say
// so. Only an answer that proves nothing was delivered lets the message be
// sent again: a 429, a definite refusal (403 InvalidBotApiHost is retried
// on the GCC host as a new call), or a connection that failed before any of
// the request was written. A late answer, a reset after the request was
// written, 412 and 5xx may all hide a delivered message.
func deliveryUnknown(o outcome) bool {
	switch {
	case o.err != nil:
		return o.written
	case o.status == http.StatusPreconditionFailed, o.status >= 500:
		return true
	}
	return false // 2xx delivered; 429, 3xx and other 4xx delivered nothing
}

// unknownDetail says what happened to a message whose delivery is unknown.
func unknownDetail(o outcome) string {
	what := fmt.Sprintf("HTTP %d", o.status)
	if o.err != nil {
		_, what = netReason(o.err)
	}
	return sanitize(what+" after the message was sent: it may have been delivered, so it is not sent again", maxDetail)
}

// strandedResult is the result of a conversation claimed for sending in
// this run by a process that stopped before recording the answer.
func (s *session) strandedResult(ref blockreport.Reference) blockreport.Result {
	return blockreport.Result{
		RunID: s.runID, ReferenceID: ref.ID, Status: blockreport.StatusFailed, Reason: ReasonDeliveryUnknown,
		Detail:   "claimed for sending by a blockreport process that stopped before recording the answer: it may have been delivered, so it is not sent again",
		ProbedAt: s.p.cfg.Now(),
	}
}

// toProbe is a reference that passed its precheck, with its service base.
type toProbe struct {
	ref  blockreport.Reference
	base *url.URL
}

// writeTrace records whether any of a request was written to the
// connection (httptrace WroteHeaders; WroteRequest once all of it was).
type writeTrace struct {
	headers, request atomic.Bool
}

func (w *writeTrace) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		WroteHeaders: func() { w.headers.Store(true) },
		WroteRequest: func(i httptrace.WroteRequestInfo) { w.request.Store(i.Err == nil) },
	}
}

// written is true once anything of the request may have reached the
// server.
func (w *writeTrace) written() bool { return w.headers.Load() || w.request.Load() }

// claimBatch is the number of conversations claimed per store write: about
// a quarter second of the tenant's rate, between 1 and 25, so that a crash
// strands at most that many per tenant besides what was in flight.
func claimBatch(rate float64, configured int) int {
	if configured > 0 {
		return configured
	}
	return min(max(int(rate/4), 1), 25)
}

// claimAndStart claims batch (references of one tenant that passed their
// precheck) in one committed store write, then paces and starts the probe
// of each one it claimed. A reference claimed before, by a process that
// died or by another one, is not sent: it gets a DeliveryUnknown result. A
// store that keeps failing stops the run, as a failing save does.
func (s *session) claimAndStart(batch []toProbe, pc *pacer) error {
	ids := make([]int64, len(batch))
	for i, t := range batch {
		ids[i] = t.ref.ID
	}
	var got []int64
	err := s.retryStore(s.dispatch, "claim sends", func() error {
		var err error
		got, err = s.sends.ClaimSends(s.dispatch, s.runID, ids, s.p.cfg.Now())
		return err
	}, func() bool { return s.dispatch.Err() == nil })
	if err != nil {
		if s.dispatch.Err() == nil {
			s.fail(fmt.Errorf("record %d sends of run %d before sending them: %w", len(ids), s.runID, err))
		}
		return err
	}
	mine := make(map[int64]bool, len(got))
	for _, id := range got {
		mine[id] = true
	}
	for i, t := range batch {
		if !mine[t.ref.ID] {
			s.results <- s.strandedResult(t.ref)
			continue
		}
		if err := s.start(t, pc); err != nil {
			for _, u := range batch[i:] { // claimed, never sent
				if mine[u.ref.ID] {
					s.unsent.add(u.ref.ID)
				}
			}
			return err
		}
	}
	return nil
}

// unsent collects the claimed references of a session whose message
// provably never went out, to release their claims when the session ends.
type unsent struct {
	mu  sync.Mutex
	ids []int64
}

func (u *unsent) add(ids ...int64) {
	u.mu.Lock()
	u.ids = append(u.ids, ids...)
	u.mu.Unlock()
}

func (u *unsent) take() []int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	ids := u.ids
	u.ids = nil
	return ids
}

// release drops the claims of the session's unsent references. A failure
// only costs those conversations a DeliveryUnknown result on resume, never
// a second message.
func (s *session) release() {
	ids := s.unsent.take()
	if s.sends == nil || len(ids) == 0 {
		return
	}
	err := s.retryStore(s.inflight, "release unsent claims", func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.inflight), time.Minute)
		defer cancel()
		return s.sends.ReleaseSends(ctx, s.runID, ids)
	}, func() bool { return true })
	if err != nil {
		s.p.cfg.Logger.Warn("could not release the claims of unsent messages; a resume records them as DeliveryUnknown",
			"run", s.runID, "conversations", len(ids), "err", err)
	}
}
