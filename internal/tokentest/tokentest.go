// Package tokentest is a client-credentials token endpoint for the tests
// of token renewal: it issues tok-1, tok-2, ..., can fail with 503 on
// demand and hold its answers, and counts what it did.
package tokentest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// FirstTTL is the lifetime of the first token, in seconds: just over a
// 5-minute refresh window, so moving a clock a few seconds puts the token
// inside it, and a few minutes past its expiry.
const FirstTTL = 301

// Server is the token endpoint. Its URL is a whole token endpoint (any
// path); tokens after the first last an hour.
type Server struct {
	*httptest.Server
	secret string

	mu     sync.Mutex
	fail   int // 503s still to give; -1: forever
	issued int
	failed int
	hold   chan struct{}
}

// New starts a Server accepting client_secret secret ("": any) and closes
// it when t ends.
func New(t testing.TB, secret string) *Server {
	t.Helper()
	s := &Server{secret: secret}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if s.secret != "" && (r.ParseForm() != nil || r.PostForm.Get("client_secret") != s.secret) {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"}`)
		return
	}
	if s.fail != 0 {
		if s.fail > 0 {
			s.fail--
		}
		s.failed++
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"temporarily_unavailable","error_description":"AADSTS90033: busy"}`)
		return
	}
	s.issued++
	expires := 3600
	if s.issued == 1 {
		expires = FirstTTL
	}
	fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%d,"access_token":"tok-%d"}`, expires, s.issued)
}

// Fail makes the next n answers 503s (-1: all of them; 0: none).
func (s *Server) Fail(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = n
}

// Hold makes answers wait until the returned function is called.
func (s *Server) Hold() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.hold = ch
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.hold = nil
		s.mu.Unlock()
		close(ch)
	}
}

// Counts is how many tokens were issued and how many 503s answered.
func (s *Server) Counts() (issued, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued, s.failed
}
