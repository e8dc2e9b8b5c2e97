package faketeams

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"time"
)

// Faults are injected failures, drawn per connector request with the
// server's Seed. A fault fails only that attempt: it never consumes a step
// of the conversation's script or changes its state.
type Faults struct {
	// ServerErrors is the share of answers replaced by a 500, 502, 503,
	// 504 or 412 (chosen uniformly).
	ServerErrors float64
	// Resets is the share of requests whose connection is reset (TCP RST).
	Resets float64
	// Stalls is the share of requests that hang for Config.StallFor.
	Stalls float64
	// Throttles is the share of requests that start a burst of 429s for
	// their tenant lasting BurstFor.
	Throttles float64
	BurstFor  time.Duration // default 2 s
}

func (f Faults) validate() error {
	for _, v := range []float64{f.ServerErrors, f.Resets, f.Stalls, f.Throttles} {
		if v < 0 || v > 1 || math.IsNaN(v) {
			return fmt.Errorf("fault share %v out of [0, 1]", v)
		}
	}
	if sum := f.ServerErrors + f.Resets + f.Stalls + f.Throttles; sum > 1 {
		return fmt.Errorf("fault shares add up to %v > 1", sum)
	}
	return nil
}

var faultStatuses = []int{
	http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
	http.StatusGatewayTimeout, http.StatusPreconditionFailed,
}

// latency draws a log-normal delay with median cfg.Latency.
func (s *Server) latency() time.Duration {
	if s.cfg.Latency <= 0 {
		return 0
	}
	s.mu.Lock()
	z := s.rng.NormFloat64()
	s.mu.Unlock()
	return time.Duration(float64(s.cfg.Latency) * math.Exp(s.cfg.LatencySigma*z))
}

// fault injects a fault into the answer; it reports whether it did.
func (s *Server) fault(w http.ResponseWriter, r *http.Request, req request, tenant, convID string) bool {
	f := s.cfg.Faults
	if f.ServerErrors+f.Resets+f.Stalls+f.Throttles == 0 {
		return false
	}
	s.mu.Lock()
	u := s.rng.Float64()
	pick := s.rng.IntN(len(faultStatuses))
	s.mu.Unlock()

	switch {
	case u < f.ServerErrors:
		status := faultStatuses[pick]
		var body []byte
		switch status {
		case http.StatusInternalServerError, http.StatusBadGateway:
			body = envelope("ServiceError", codeMessages["ServiceError"])
		case http.StatusPreconditionFailed:
			body = envelope("PreconditionFailed", codeMessages["PreconditionFailed"])
		}
		s.reply(w, req.route, tenant, convID, status, body, nil)
		return true
	case u < f.ServerErrors+f.Resets:
		s.mu.Lock()
		s.stats.count(req.route, "reset", convID)
		s.mu.Unlock()
		reset(w)
		return true
	case u < f.ServerErrors+f.Resets+f.Stalls:
		s.mu.Lock()
		s.stats.count(req.route, "stalled", convID)
		s.mu.Unlock()
		if s.sleep(r.Context(), s.cfg.StallFor) {
			w.WriteHeader(http.StatusGatewayTimeout)
		}
		return true
	case u < f.ServerErrors+f.Resets+f.Stalls+f.Throttles:
		burst := f.BurstFor
		if burst <= 0 {
			burst = 2 * time.Second
		}
		s.mu.Lock()
		ts := s.tenants[tenant]
		if ts == nil {
			ts = &tenantState{}
			s.tenants[tenant] = ts
		}
		ts.burstUntil = s.cfg.Now().Add(burst)
		s.mu.Unlock()
		s.reply(w, req.route, tenant, convID, http.StatusTooManyRequests,
			envelope("Throttled", codeMessages["Throttled"]),
			http.Header{"Retry-After": {itoa(max(1, int(math.Ceil(burst.Seconds()))))}})
		return true
	}
	return false
}

// reset closes the client connection with a TCP RST.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) //nolint:errcheck
	}
	conn.Close()
}
