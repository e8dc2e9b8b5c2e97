package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/store"
)

// TestHostileImportEndToEnd imports hostile references, probes and reports
// them: a 1 MB user name is stored whole and cut to a spreadsheet cell in
// the reports; SQL metacharacters are data; a NUL is a listed rejection; a
// service URL with user info is invalid and nothing is sent to it.
func TestHostileImportEndToEnd(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("service URL with user info was called: %s %s (Authorization %q)", r.Method, r.URL, r.Header.Get("Authorization"))
	}))
	t.Cleanup(trap.Close)

	dir := t.TempDir()
	longName := strings.Repeat("N", 1<<20)
	sqlName := `Robert'); DROP TABLE conversation_references;--`
	ref := func(conv, user, name, serviceURL string) string {
		b, _ := json.Marshal(map[string]any{
			"user":         map[string]any{"id": user, "name": name, "email": `' OR '1'='1@x`},
			"conversation": map[string]any{"id": conv, "conversationType": "personal", "tenantId": "t-'--"},
			"serviceUrl":   serviceURL, "channelId": "msteams", "locale": `"; DELETE FROM probe_runs; --`,
		})
		return string(b)
	}
	lines := []string{
		ref("a:long", "29:long", longName, fake.ServiceURL("amer")),
		ref("a:'; DROP TABLE probe_results;--", "29:sql'\"", sqlName, fake.ServiceURL("amer")),
		ref("a:userinfo", "29:ui", "ui", "http://u:pw@"+strings.TrimPrefix(trap.URL, "http://")+"/amer/"),
		ref("a:nul", "29:nul", "a\u0000b", fake.ServiceURL("amer")),
	}
	in := filepath.Join(dir, "refs.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dbURL := "sqlite:" + filepath.Join(dir, "store.db")
	env := probeEnv(fake, dbURL, nil)
	ctx := context.Background()

	var stdout, stderr bytes.Buffer
	if code := exitCode(run(ctx, []string{"import", in}, env, &stdout, &stderr), &stderr); code != 2 {
		t.Fatalf("import with a NUL record: exit %d, want 2\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "refs.jsonl:4: a field contains a NUL character") {
		t.Errorf("import does not name the NUL record:\n%s", stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := exitCode(run(ctx, []string{"import", "--skip-invalid", in}, env, &stdout, &stderr), &stderr); code != 0 {
		t.Fatalf("import --skip-invalid: exit %d\n%s", code, stderr.String())
	}
	if got := stdout.String(); got != "added 3, updated 0, unchanged 0, rejected 1\n" {
		t.Errorf("import printed %q", got)
	}
	if out, code := runProbeCmd(t, ctx, env); code != 0 {
		t.Fatalf("probe: exit %d\n%s", code, out)
	}
	outDir := filepath.Join(dir, "reports")
	stdout.Reset()
	stderr.Reset()
	if code := exitCode(run(ctx, []string{"report", "--out", outDir}, env, &stdout, &stderr), &stderr); code != 0 {
		t.Fatalf("report: exit %d\n%s", code, stderr.String())
	}

	db, err := store.Open(ctx, dbURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runInfo, err := db.LatestRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byConv := map[string]blockreport.Row{}
	if err := db.Rows(ctx, runInfo.ID, func(r blockreport.Row) error {
		byConv[r.Reference.ConversationID] = r
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(byConv) != 3 {
		t.Fatalf("%d rows, want 3", len(byConv))
	}
	if r := byConv["a:long"]; r.UserName != longName {
		t.Errorf("1 MB name stored as %d bytes, want it whole", len(r.UserName))
	}
	if r := byConv["a:'; DROP TABLE probe_results;--"]; r.UserName != sqlName || r.TenantID != "t-'--" || r.Locale != `"; DELETE FROM probe_runs; --` {
		t.Errorf("SQL metacharacters changed: %+v", r.Reference)
	}
	if r := byConv["a:userinfo"]; r.Status != blockreport.StatusInvalid || r.Attempts != 0 {
		t.Errorf("service URL with user info: %s %s %q, want invalid with no attempt", r.Status, r.Reason, r.Detail)
	}

	htmls, _ := filepath.Glob(filepath.Join(outDir, "*.html"))
	if len(htmls) != 1 {
		t.Fatalf("HTML reports %v", htmls)
	}
	html, err := os.ReadFile(htmls[0])
	if err != nil {
		t.Fatal(err)
	}
	cell := strings.Repeat("N", 32767)
	if !bytes.Contains(html, []byte(cell)) || bytes.Contains(html, []byte(cell+"N")) {
		t.Errorf("HTML does not show the long name cut to 32767 characters")
	}
	if len(html) > 1<<20 {
		t.Errorf("HTML is %d bytes: the 1 MB name was not cut", len(html))
	}
}
