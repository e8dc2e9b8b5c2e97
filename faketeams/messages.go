package faketeams

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
)

// trackMessage counts a send-activity request that carries a message in
// Stats.Messages once the handler is done with it, unless the answer was a
// 429 (or a 401 or 400, given before anything is processed): every other
// outcome, a reset or a stall included, may have delivered the message. The
// body is read here and handed on unchanged.
func (s *Server) trackMessage(w http.ResponseWriter, r *http.Request, req request) (http.ResponseWriter, func()) {
	if req.route != RouteSendActivity {
		return w, func() {}
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	var a activity
	if json.Unmarshal(body, &a) != nil || a.Type != "message" {
		return w, func() {}
	}
	rec := &statusRecorder{ResponseWriter: w}
	return rec, func() {
		switch rec.status {
		case http.StatusTooManyRequests, http.StatusUnauthorized, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			return
		}
		s.mu.Lock()
		s.stats.Messages[req.convID]++
		s.mu.Unlock()
		s.recordCards(req.convID, rec.status, body)
	}
}

// statusRecorder remembers the status of an answer; it still lets the
// fault injector hijack the connection for a reset.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return r.ResponseWriter.(http.Hijacker).Hijack()
}
