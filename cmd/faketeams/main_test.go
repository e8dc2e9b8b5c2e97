package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blockreport/blockreport/auth"
	"github.com/blockreport/blockreport/faketeams"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func noEnv(string) string { return "" }

func TestUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"help", []string{"--help"}, 0, "-export-refs"},
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"stray argument", []string{"serve"}, 2, "unexpected argument"},
		{"population and users", []string{"--population", "x.jsonl", "--users", "5"}, 2, "exclude each other"},
		{"share out of range", []string{"--blocked", "1.5"}, 2, "--blocked"},
		{"shares over 1", []string{"--blocked", "0.6", "--deleted", "0.6"}, 2, "more than 1"},
		{"faults over 1", []string{"--fault-5xx", "0.7", "--fault-reset", "0.7"}, 2, "fault shares"},
		{"negative rps", []string{"--tenant-rps", "-1"}, 2, "--tenant-rps"},
		{"token out without subject", []string{"--federated-token-out", "x"}, 2, "--federated-subject"},
		{"missing certificate file", []string{"--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--app-certificate", "/nonexistent.pem"}, 1, "read certificates"},
		{"missing population file", []string{"--listen", "127.0.0.1:0", "--population", "/nonexistent/pop.jsonl"}, 1, "open population"},
		{"bad listen address", []string{"--listen", "nowhere:-1", "--users", "1"}, 1, "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, noEnv, &stdout, &stderr)
			if code := exitCode(err, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d (err %v)", code, tt.code, err)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, noEnv, &stderr); err == nil {
		t.Fatal("no ErrHelp")
	}
	for _, f := range []string{"listen", "app-id", "app-secret", "bot-name", "population", "users", "tenants", "blocked",
		"uninstalled", "admin-disabled", "deleted", "transient", "teams", "seed", "region", "export-refs",
		"export-population", "token-ttl", "tenant-rps", "conversation-limits", "latency", "latency-sigma",
		"fault-5xx", "fault-reset", "fault-stall", "fault-429", "stall-for", "burst-for",
		"tls-listen", "ca-out", "app-certificate", "app-certificate-out", "trusted-issuer", "federated-subject",
		"federated-token-out", "identity-header", "identity-tenant"} {
		if !strings.Contains(stderr.String(), "  -"+f) {
			t.Errorf("help lacks --%s", f)
		}
	}
}

// serve runs the command with args until ctx ends and waits for its
// banner; field reads a value of the banner by its prefix.
func serve(t *testing.T, ctx context.Context, args []string, getenv func(string) string) (field func(string) string, stdout *syncBuffer, done chan error) {
	t.Helper()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done = make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, stdout, stderr) }()
	var out string
	for !strings.Contains(out, "population:") {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		out = stdout.String()
	}
	return func(prefix string) string {
		t.Helper()
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				return strings.Fields(v)[0]
			}
		}
		t.Fatalf("no %q line in:\n%s", prefix, out)
		return ""
	}, stdout, done
}

// TestServe starts the command, reads the URLs it prints, gets a token with
// the printed credentials, sends a message to an exported reference and
// stops it by cancelling the context.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	refs := filepath.Join(dir, "refs.jsonl")
	popFile := filepath.Join(dir, "pop.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	field, stdout, done := serve(t, ctx, []string{"--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--users", "20", "--tenants", "2", "--latency", "0",
		"--export-refs", refs, "--export-population", popFile}, func(k string) string {
		return map[string]string{"FAKETEAMS_APP_SECRET": "from-env"}[k]
	})
	tokenURL, secret := field("token URL:"), field("app secret:")
	if secret != "from-env" {
		t.Errorf("secret %q, want the environment's", secret)
	}
	resp, err := http.PostForm(tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {field("app id:")},
		"client_secret": {secret}, "scope": {faketeams.Scope}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok) //nolint:errcheck
	resp.Body.Close()
	if tok.AccessToken == "" {
		t.Fatalf("no token: %d", resp.StatusCode)
	}

	f, err := os.Open(refs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	var first struct {
		ServiceURL   string `json:"serviceUrl"`
		Conversation struct{ ID string }
	}
	for sc.Scan() {
		if n == 0 {
			if err := json.Unmarshal(sc.Bytes(), &first); err != nil {
				t.Fatal(err)
			}
		}
		n++
	}
	if n != 20 || first.ServiceURL != field("service URL:") {
		t.Fatalf("%d references, first service URL %q", n, first.ServiceURL)
	}
	req, _ := http.NewRequest("POST", first.ServiceURL+"v3/conversations/"+url.PathEscape(first.Conversation.ID)+"/activities",
		strings.NewReader(`{"type":"typing"}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusBadRequest {
		t.Errorf("typing on the first exported reference: %d", resp.StatusCode)
	}

	pf, err := os.Open(popFile)
	if err != nil {
		t.Fatal(err)
	}
	pop, err := faketeams.ReadPopulation(pf)
	pf.Close()
	if err != nil || len(pop) != 20 {
		t.Fatalf("exported population: %d, %v", len(pop), err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop on cancel")
	}
	if !strings.Contains(stdout.String(), "stopped: 1 tokens issued") {
		t.Errorf("stop line missing:\n%s", stdout.String())
	}
}

// TestServeCredentials: the files the command writes are what blockreport
// needs: with the CA, the app certificate and the federated token, the
// credentials get tokens from the printed authority; the printed identity
// endpoint and header serve the managed identity.
func TestServeCredentials(t *testing.T) {
	dir := t.TempDir()
	ca, cert, fed := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "app.pem"), filepath.Join(dir, "sa-token")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	field, stdout, done := serve(t, ctx, []string{"--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--users", "1", "--latency", "0",
		"--ca-out", ca, "--app-certificate-out", cert, "--federated-subject", "system:serviceaccount:br:br", "--federated-token-out", fed,
		"--identity-header", "hdr-1"}, noEnv)
	out := stdout.String()
	authority := field("authority:")
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA in --ca-out")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	if fi, err := os.Stat(cert); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("app certificate file %v, %v: want it private (0600)", fi, err)
	}
	pemData, _ := os.ReadFile(cert)
	certs, key, err := auth.ParseCertificate(pemData, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []auth.Config{
		{Kind: auth.Certificate, Certificates: certs, Key: key},
		{Kind: auth.WorkloadIdentity, FederatedTokenFile: fed},
	} {
		cfg.AppID, cfg.AuthorityHost, cfg.HTTPClient = field("app id:"), authority, client
		cred, err := auth.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cred.Token(ctx, "", faketeams.Scope); err != nil {
			t.Errorf("%s: %v", cfg.Kind, err)
		}
	}
	if !strings.Contains(out, "IDENTITY_HEADER=hdr-1") {
		t.Errorf("identity header not printed:\n%s", out)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "stopped: 2 tokens issued") {
		t.Errorf("stop line:\n%s", stdout.String())
	}
}
