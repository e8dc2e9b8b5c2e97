package main

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/ingest"
)

// Recognisable secrets: the app password, the prefix of every token the
// simulated Teams issues, the password in a database URL, the password of
// the PKCS#12 test certificate and the managed-identity header. The
// private keys and the federated token are made at run time
// (runtimeCanaries).
const (
	canarySecret         = "S3cr3t-canary-7f3a9"
	canaryToken          = "tok-canary-5e1d-"
	canaryDBPass         = "pw-canary"
	canaryCertPassword   = "correct horse battery staple" // ../../auth/testdata/app.pfx.password
	canaryIdentityHeader = "idh-canary-6c1e4"
)

// runtimeCanaries are secrets made by the test: pieces of private keys and
// the federated token.
var runtimeCanaries []string

// keyCanaries are two lines from the middle of a PEM private key: what a
// leaked key would show.
func keyCanaries(t *testing.T, pemData []byte) []string {
	t.Helper()
	var in bool
	var lines []string
	for _, l := range strings.Split(string(pemData), "\n") {
		switch {
		case strings.HasPrefix(l, "-----BEGIN") && strings.Contains(l, "PRIVATE KEY"):
			in = true
		case strings.HasPrefix(l, "-----END"):
			in = false
		case in:
			lines = append(lines, l)
		}
	}
	if len(lines) < 6 {
		t.Fatal("no private key in the PEM")
	}
	return []string{lines[2], lines[len(lines)/2]}
}

// TestSecretsNeverLeak runs every command, with the app password in the
// environment and in --app-password-file, at debug log level, through
// success and every failure path, and checks that neither the password, an
// issued token nor a database password appears in stdout, stderr, any table
// of the store or any report file.
func TestSecretsNeverLeak(t *testing.T) {
	const sa = "system:serviceaccount:blockreport:secrets"
	pfxPEM, err := os.ReadFile("../../auth/testdata/app.cert.pem")
	if err != nil {
		t.Fatal(err)
	}
	pfxCert, err := faketeams.ParseCertificatesPEM(pfxPEM)
	if err != nil {
		t.Fatal(err)
	}
	appCert := testAppCert(t)
	stranger, err := faketeams.NewAppCertificate(faketeams.AppCertificateOptions{Subject: "not uploaded"})
	if err != nil {
		t.Fatal(err)
	}
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 40, Tenants: 2, Blocked: 0.2, Uninstalled: 0.1, Transient: 0.1, Seed: 7})
	notifyConv := "" // a conversation that takes the summary card
	for _, c := range pop {
		if c.State == faketeams.StateActive && notifyConv == "" {
			notifyConv = c.ConversationID
		}
	}
	fake := startFake(t, faketeams.Config{
		AppSecret: canarySecret, TokenPrefix: canaryToken,
		Population: pop,
		Entra: faketeams.Entra{
			Certificates: append(pfxCert, appCert.Cert), IdentityHeader: canaryIdentityHeader,
			IdentityTenant: "secrets-tenant", FederatedSubjects: []string{sa},
		},
	})
	fedToken, err := fake.FederatedToken(sa, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expiredFed, _ := fake.FederatedToken(sa, -time.Hour)
	runtimeCanaries = append([]string{fedToken[40:90], expiredFed[40:90]}, keyCanaries(t, appCert.PEM())...)
	runtimeCanaries = append(runtimeCanaries, keyCanaries(t, stranger.PEM())...)
	t.Cleanup(func() { runtimeCanaries = nil })
	// The managed identity comes from the process environment (App
	// Service), as the Azure SDK reads it.
	t.Setenv("IDENTITY_ENDPOINT", fake.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", canaryIdentityHeader)
	// A second simulated Teams with the same credentials: its tokens are
	// unknown to the first, whose connector then answers 401.
	other := startFake(t, faketeams.Config{AppSecret: canarySecret, TokenPrefix: canaryToken})

	root := t.TempDir()
	work := filepath.Join(root, "work") // everything scanned for secrets
	secretDir := filepath.Join(root, "secret")
	for _, d := range []string{work, secretDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pwFile := filepath.Join(secretDir, "app-password")
	if err := os.WriteFile(pwFile, []byte(canarySecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFile := filepath.Join(secretDir, "wrong-password")
	if err := os.WriteFile(wrongFile, []byte("wrong-"+canarySecret), 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := func(name string, b []byte) string {
		p := filepath.Join(secretDir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certPEM := secretFile("app.pem", appCert.PEM())
	strangerPEM := secretFile("stranger.pem", stranger.PEM())
	pfxData, err := os.ReadFile("../../auth/testdata/app.pfx")
	if err != nil {
		t.Fatal(err)
	}
	pfxFile := secretFile("app.pfx", pfxData)
	pfxPassFile := secretFile("app.pfx.password", []byte(canaryCertPassword+"\n"))
	fedFile := secretFile("azure-identity-token", []byte(fedToken))
	expiredFedFile := secretFile("expired-token", []byte(expiredFed))
	caFile := secretFile("ca.pem", fake.CACertPEM())
	refsFile := filepath.Join(work, "refs.csv")
	writeRefsCSV(t, refsFile, fake)

	dbURL := "sqlite:" + filepath.Join(work, "store.db")
	badPG := "postgres://u:" + canaryDBPass + "@127.0.0.1:1/x?sslmode=disable"
	badPGSyntax := "postgres://u:" + canaryDBPass + "@[::1/x"
	out := func(name string) string { return filepath.Join(work, name) }
	base := map[string]string{
		"BLOCKREPORT_DB":              dbURL,
		"MICROSOFT_APP_ID":            faketeams.DefaultAppID,
		"MICROSOFT_APP_PASSWORD":      canarySecret,
		"BLOCKREPORT_TOKEN_URL":       fake.TokenURL("botframework.com"),
		"BLOCKREPORT_ALLOW_HOSTS":     "127.0.0.1",
		"BLOCKREPORT_GCC_SERVICE_URL": fake.ServiceURL("gcc"),
		"BLOCKREPORT_LOG_LEVEL":       "debug",
		"BLOCKREPORT_TIMEOUT":         "5s",
		"BLOCKREPORT_ATTEMPTS":        "2",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	// withTLS is the environment of the TLS token service with no secret.
	withTLS := func(kv ...string) map[string]string {
		return with(append([]string{"MICROSOFT_APP_PASSWORD", "", "BLOCKREPORT_TOKEN_URL", "",
			"BLOCKREPORT_AUTHORITY_HOST", fake.AuthorityHost(), "BLOCKREPORT_CA_FILE", caFile}, kv...)...)
	}
	const ok, fails = 0, -1 // fails: any non-zero exit
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want int
	}{
		{"migrate", with(), []string{"migrate"}, ok},
		{"import", with(), []string{"import", refsFile}, ok},
		{"probe env password", with(), []string{"probe"}, ok},
		{"probe password file", with("MICROSOFT_APP_PASSWORD", ""), []string{"probe", "--app-password-file", pwFile}, ok},
		{"report", with(), []string{"report", "--out", out("reports")}, ok},
		{"report redacted", with(), []string{"report", "--out", out("reports"), "--redact"}, ok},
		{"runs", with(), []string{"runs"}, ok},
		{"runs json", with(), []string{"runs", "--json"}, ok},
		{"run", with(), []string{"run", "--out", out("run-reports")}, ok},
		{"run password file json logs", with("MICROSOFT_APP_PASSWORD", "", "BLOCKREPORT_LOG_FORMAT", "json"),
			[]string{"run", "--app-password-file", pwFile, "--out", out("run-reports")}, ok},
		{"version", with(), []string{"version"}, ok},
		{"export csv", with(), []string{"export", "--status", "all", "--out", out("export.csv")}, ok},
		{"export jsonl", with(), []string{"export", "--format", "jsonl", "--out", out("export.jsonl")}, ok},
		{"history json", with(), []string{"history", "--json", notifyConv}, ok},
		{"report json and metrics", with(), []string{"report", "--out", out("reports"), "--format", "xlsx,html,json", "--metrics-file", out("blockreport.prom")}, ok},
		{"report notify", with(), []string{"report", "--out", out("reports"), "--notify-conversation", notifyConv}, ok},
		{"report notify wrong secret", with("MICROSOFT_APP_PASSWORD", "wrong-"+canarySecret), []string{"report", "--out", out("reports"), "--notify-conversation", notifyConv}, fails},
		{"run notify 401", with("BLOCKREPORT_TOKEN_URL", other.TokenURL("botframework.com")), []string{"run", "--out", out("run-reports"), "--notify-conversation", notifyConv}, fails},

		{"probe wrong secret", with("MICROSOFT_APP_PASSWORD", "wrong-"+canarySecret), []string{"probe"}, fails},
		{"run wrong secret file", with("MICROSOFT_APP_PASSWORD", ""), []string{"run", "--app-password-file", wrongFile, "--out", out("run-reports")}, fails},
		{"probe 401 from connector", with("BLOCKREPORT_TOKEN_URL", other.TokenURL("botframework.com")), []string{"probe"}, fails},
		{"run 401 from connector", with("BLOCKREPORT_TOKEN_URL", other.TokenURL("botframework.com")), []string{"run", "--out", out("run-reports")}, fails},
		{"probe unreachable token URL", with("BLOCKREPORT_TOKEN_URL", "http://127.0.0.1:1/t/oauth2/v2.0/token"), []string{"probe"}, fails},
		{"probe no password", with("MICROSOFT_APP_PASSWORD", ""), []string{"probe"}, fails},
		{"probe missing password file", with(), []string{"probe", "--app-password-file", filepath.Join(secretDir, "none")}, fails},

		// Certificates, managed identity and workload identity.
		{"probe certificate PEM", withTLS("BLOCKREPORT_APP_CERTIFICATE_FILE", certPEM), []string{"probe"}, ok},
		{"run PKCS#12 password env", withTLS("AZURE_CLIENT_CERTIFICATE_PATH", pfxFile, "AZURE_CLIENT_CERTIFICATE_PASSWORD", canaryCertPassword),
			[]string{"run", "--out", out("run-reports")}, ok},
		{"probe PKCS#12 password file", withTLS(), []string{"probe", "--app-certificate-file", pfxFile, "--app-certificate-password-file", pfxPassFile}, ok},
		{"probe PKCS#12 wrong password", withTLS("AZURE_CLIENT_CERTIFICATE_PASSWORD", "x"+canaryCertPassword), []string{"probe", "--app-certificate-file", pfxFile}, fails},
		{"probe certificate not uploaded", withTLS("BLOCKREPORT_APP_CERTIFICATE_FILE", strangerPEM), []string{"probe"}, fails},
		{"probe certificate and secret", withTLS("BLOCKREPORT_APP_CERTIFICATE_FILE", certPEM, "MICROSOFT_APP_PASSWORD", canarySecret), []string{"probe"}, fails},
		{"probe certificate -h", withTLS("AZURE_CLIENT_CERTIFICATE_PATH", pfxFile, "AZURE_CLIENT_CERTIFICATE_PASSWORD", canaryCertPassword), []string{"probe", "-h"}, ok},
		{"probe managed identity not assigned", withTLS("MicrosoftAppType", "UserAssignedMSI", "MicrosoftAppTenantId", "secrets-tenant", "MicrosoftAppId", "not-assigned"), []string{"probe"}, fails},
		{"probe managed identity", withTLS("MicrosoftAppType", "UserAssignedMSI", "MicrosoftAppTenantId", "secrets-tenant"), []string{"probe"}, ok},
		{"probe workload identity", withTLS("AZURE_FEDERATED_TOKEN_FILE", fedFile), []string{"probe"}, ok},
		{"run workload identity expired token", withTLS("AZURE_FEDERATED_TOKEN_FILE", expiredFedFile), []string{"run", "--out", out("run-reports")}, fails},
	}
	for _, cmd := range []string{"import", "migrate", "probe", "report", "runs", "run", "export", "history"} {
		var args []string // after the command and --db
		switch cmd {
		case "import":
			args = []string{refsFile}
		case "report", "run":
			args = []string{"--out", out("bad-db")}
		case "history":
			args = []string{"u@example.com"}
		}
		cases = append(cases,
			struct {
				name string
				env  map[string]string
				args []string
				want int
			}{cmd + " bad db URL", with("BLOCKREPORT_DB", badPG), append([]string{cmd}, args...), fails},
			struct {
				name string
				env  map[string]string
				args []string
				want int
			}{cmd + " bad db URL flag", with(), append([]string{cmd, "--db", badPGSyntax}, args...), fails},
		)
	}
	for _, cmd := range []string{"import", "migrate", "probe", "report", "runs", "run", "demo", "version", "export", "history"} {
		cases = append(cases, struct {
			name string
			env  map[string]string
			args []string
			want int
		}{cmd + " -h", with("BLOCKREPORT_DB", badPG, "DATABASE_URL", badPG), []string{cmd, "-h"}, ok})
	}
	cases = append(cases, struct {
		name string
		env  map[string]string
		args []string
		want int
	}{"demo", with(), []string{"demo", "--out", out("demo"), "--users", "20", "--tenants", "1", "--log-level", "debug"}, ok})

	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var stdout, stderr bytes.Buffer
		err := run(ctx, c.args, mapEnvOf(c.env), &stdout, &stderr)
		code := exitCode(err, &stderr)
		cancel()
		if (c.want == ok) != (code == 0) {
			t.Errorf("%s: exit %d, want %s\nstderr:\n%s", c.name, code, map[bool]string{true: "0", false: "non-zero"}[c.want == ok], tail(stderr.String(), 2000))
		}
		if stderr.Len() == 0 && code != 0 {
			t.Errorf("%s: failed without a word on stderr", c.name)
		}
		if code != 0 {
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			t.Logf("%s: exit %d: %s", c.name, code, lines[len(lines)-1])
		}
		checkNoSecret(t, c.name+" stdout", stdout.Bytes())
		checkNoSecret(t, c.name+" stderr", stderr.Bytes())
	}
	if st := fake.Stats(); st.TokensIssued == 0 {
		t.Fatal("no token was ever issued: the success paths did not probe")
	}
	kinds := map[string]int{}
	for _, it := range fake.IssuedTokens() {
		kinds[it.Credential]++
	}
	for _, k := range []string{faketeams.CredentialSecret, faketeams.CredentialCertificate, faketeams.CredentialManagedIdentity, faketeams.CredentialFederated} {
		if kinds[k] == 0 {
			t.Errorf("no token issued by %s: that success path did not run (%v)", k, kinds)
		}
	}

	// Every file the commands wrote: the store (each table dumped, plus
	// the raw database files), workbooks (unzipped) and HTML.
	dumpSQLite(t, filepath.Join(work, "store.db"))
	dumpSQLite(t, filepath.Join(work, "demo", demoDBName))
	reports := 0
	err = filepath.WalkDir(work, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checkNoSecret(t, path, b)
		if strings.HasSuffix(path, ".xlsx") {
			reports++
			zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			for _, f := range zr.File {
				rc, err := f.Open()
				if err != nil {
					return err
				}
				x, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					return err
				}
				checkNoSecret(t, path+"!"+f.Name, x)
			}
		}
		if strings.HasSuffix(path, ".html") {
			reports++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reports < 6 {
		t.Errorf("found %d report files, want the workbooks and HTML of report, run and demo", reports)
	}
}

func mapEnvOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// checkNoSecret fails if b holds any of the canaries.
func checkNoSecret(t *testing.T, where string, b []byte) {
	t.Helper()
	for _, s := range append([]string{canarySecret, canaryToken, canaryDBPass, canaryCertPassword, canaryIdentityHeader}, runtimeCanaries...) {
		if i := bytes.Index(b, []byte(s)); i >= 0 {
			lo, hi := max(i-120, 0), min(i+120, len(b))
			t.Errorf("%s holds %q: ...%s...", where, s, b[lo:hi])
		}
	}
}

// dumpSQLite checks the text of every row of every table of the SQLite
// store at path.
func dumpSQLite(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 3 {
		t.Fatalf("%s: tables %v, want the store's", path, tables)
	}
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		var dump bytes.Buffer
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				fmt.Fprintf(&dump, "%v|", v)
				if b, ok := v.([]byte); ok {
					dump.Write(b)
				}
			}
			dump.WriteByte('\n')
			n++
		}
		rows.Close()
		checkNoSecret(t, path+" table "+table, dump.Bytes())
	}
}

// writeRefsCSV writes the fake's population as an import file.
func writeRefsCSV(t *testing.T, path string, fake *faketeams.Server) {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(ingest.Columns)
	for _, r := range fake.References() {
		w.Write([]string{r.TenantID, r.UserID, r.AADObjectID, r.UserName, r.Email, r.ConversationID, string(r.ConversationType),
			r.TeamID, r.ServiceURL, r.BotID, r.ChannelID, r.Locale, fmt.Sprint(r.OptedOut)})
	}
	w.Flush()
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}
