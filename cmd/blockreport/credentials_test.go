package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/store"
)

var (
	appCertOnce sync.Once
	appCert     *faketeams.AppCertificate
	appCertErr  error
)

// testAppCert is an app certificate made once per test binary (RSA keys
// take a while to make).
func testAppCert(t *testing.T) *faketeams.AppCertificate {
	t.Helper()
	appCertOnce.Do(func() {
		appCert, appCertErr = faketeams.NewAppCertificate(faketeams.AppCertificateOptions{Subject: "cmd test app"})
	})
	if appCertErr != nil {
		t.Fatal(appCertErr)
	}
	return appCert
}

// tlsEnv is the environment of a command against fake's TLS token service
// with no credential yet: add one.
func tlsEnv(t *testing.T, fake *faketeams.Server, dbURL string, kv ...string) func(string) string {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, fake.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"BLOCKREPORT_DB":              dbURL,
		"MicrosoftAppId":              faketeams.DefaultAppID,
		"BLOCKREPORT_AUTHORITY_HOST":  fake.AuthorityHost(),
		"BLOCKREPORT_CA_FILE":         ca,
		"BLOCKREPORT_ALLOW_HOSTS":     "127.0.0.1",
		"BLOCKREPORT_GCC_SERVICE_URL": fake.ServiceURL("gcc"),
		"BLOCKREPORT_LOG_LEVEL":       "warn",
	}
	for i := 0; i < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return mapEnv(env)
}

// wantRuns checks the runs the store recorded: their states, newest first.
func wantRuns(t *testing.T, dbURL string, states ...blockreport.RunState) []blockreport.Run {
	t.Helper()
	db, err := store.Open(context.Background(), dbURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs, err := db.Runs(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []blockreport.RunState
	for _, r := range runs {
		got = append(got, r.State)
	}
	if len(got) != len(states) || strings.Join(runStates(got), ",") != strings.Join(runStates(states), ",") {
		t.Fatalf("runs %v, want %v", got, states)
	}
	return runs
}

func runStates(s []blockreport.RunState) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}

// credentialsFixture is a faketeams population with the app certificate
// registered, a seeded store and its URL.
func credentialsFixture(t *testing.T, cfg faketeams.Config) (*faketeams.Server, string) {
	t.Helper()
	if cfg.Population == nil {
		cfg.Population = faketeams.Generate(faketeams.GenerateOptions{Users: 12, Tenants: 2, Blocked: 0.2, Seed: 3})
	}
	cfg.Limits = faketeams.NoLimits()
	cfg.Entra.Certificates = append(cfg.Entra.Certificates, testAppCert(t).Cert)
	fake := startFake(t, cfg)
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	openSeeded(t, dbURL, fake.References())
	return fake, dbURL
}

// TestProbeWithCertificate: a PEM with the key, and a PKCS#12 with its
// password file, each probe a whole run through azidentity.
func TestProbeWithCertificate(t *testing.T) {
	pfxCert, err := os.ReadFile("../../auth/testdata/app.cert.pem")
	if err != nil {
		t.Fatal(err)
	}
	pfxReg, err := faketeams.ParseCertificatesPEM(pfxCert)
	if err != nil {
		t.Fatal(err)
	}
	fake, dbURL := credentialsFixture(t, faketeams.Config{Entra: faketeams.Entra{Certificates: pfxReg}})
	pem := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(pem, testAppCert(t).PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, args := range [][]string{
		{"--app-certificate-file", pem},
		{"--app-certificate-file", "../../auth/testdata/app.pfx", "--app-certificate-password-file", "../../auth/testdata/app.pfx.password"},
	} {
		stderr, code := runProbeCmd(t, context.Background(), tlsEnv(t, fake, dbURL), args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		issued := fake.IssuedTokens()
		if len(issued) != i+1 || issued[i].Credential != faketeams.CredentialCertificate || issued[i].Tenant != "botframework.com" {
			t.Errorf("%v: tokens %+v, want one more by certificate from botframework.com", args, issued)
		}
	}
	runs := wantRuns(t, dbURL, blockreport.RunFinished, blockreport.RunFinished)
	db, _ := store.Open(context.Background(), dbURL, slog.New(slog.DiscardHandler))
	defer db.Close()
	checkOneResultEach(t, db, runs[0].ID, fake)
}

// TestBadCertificateNoRun: a certificate Entra does not know, and an
// expired one, each end with one line naming the fix, exit 1, and no run.
func TestBadCertificateNoRun(t *testing.T) {
	fake, dbURL := credentialsFixture(t, faketeams.Config{})
	other, err := faketeams.NewAppCertificate(faketeams.AppCertificateOptions{Subject: "not uploaded"})
	if err != nil {
		t.Fatal(err)
	}
	old, err := faketeams.NewAppCertificate(faketeams.AppCertificateOptions{Subject: "old",
		NotBefore: time.Now().Add(-60 * 24 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		cert *faketeams.AppCertificate
		want []string
	}{
		{"not uploaded", other, []string{"AADSTS700027", "wrong or expired certificate?", "upload certificate", "--app-certificate-file"}},
		{"expired", old, []string{"expired on " + old.Cert.NotAfter.UTC().Format("2006-01-02"), "create a new certificate, upload it", "--app-certificate-file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, tt.name+".pem")
			if err := os.WriteFile(f, tt.cert.PEM(), 0o600); err != nil {
				t.Fatal(err)
			}
			stderr, code := runProbeCmd(t, context.Background(), tlsEnv(t, fake, dbURL, "BLOCKREPORT_APP_CERTIFICATE_FILE", f))
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if code != 1 || len(lines) != 1 {
				t.Fatalf("exit %d, stderr %q; want exit 1 and one line", code, stderr)
			}
			for _, w := range append(tt.want, "thumbprint") {
				if !strings.Contains(lines[0], w) {
					t.Errorf("%q lacks %q", lines[0], w)
				}
			}
			if strings.Contains(stderr, "PRIVATE KEY") {
				t.Error("key material in the message")
			}
		})
	}
	wantRuns(t, dbURL)
	if n := fake.Stats().Total(faketeams.RouteSendActivity); n != 0 {
		t.Errorf("%d probes sent without a token", n)
	}
}

// TestProbeWithManagedIdentity: a UserAssignedMSI bot through App
// Service's IDENTITY_ENDPOINT and IDENTITY_HEADER (read from the process
// environment, as the Azure SDK does).
func TestProbeWithManagedIdentity(t *testing.T) {
	id := "mi-cmd-" + time.Now().Format("150405.000000000") // MSAL caches per identity in the process
	fake, dbURL := credentialsFixture(t, faketeams.Config{Entra: faketeams.Entra{IdentityClientID: id, IdentityTenant: "contoso-tenant"}})
	t.Setenv("IDENTITY_ENDPOINT", fake.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", fake.IdentityHeader())
	env := tlsEnv(t, fake, dbURL, "MicrosoftAppId", id, "MicrosoftAppType", "UserAssignedMSI", "MicrosoftAppTenantId", "contoso-tenant")
	stderr, code := runProbeCmd(t, context.Background(), env)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	issued := fake.IssuedTokens()
	if len(issued) != 1 || issued[0].Credential != faketeams.CredentialManagedIdentity || issued[0].AppID != id {
		t.Errorf("tokens %+v, want one from the managed identity", issued)
	}
	if fake.Stats().Total(faketeams.RouteToken) != 0 {
		t.Error("the token endpoint was asked")
	}
	wantRuns(t, dbURL, blockreport.RunFinished)
}

// TestProbeWithWorkloadIdentity: AKS workload identity through the token
// file the kubelet projects (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID,
// AZURE_TENANT_ID).
func TestProbeWithWorkloadIdentity(t *testing.T) {
	const sa = "system:serviceaccount:blockreport:probe"
	fake, dbURL := credentialsFixture(t, faketeams.Config{Entra: faketeams.Entra{FederatedSubjects: []string{sa}}})
	jwt, err := fake.FederatedToken(sa, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte(jwt), 0o600); err != nil {
		t.Fatal(err)
	}
	env := tlsEnv(t, fake, dbURL, "MicrosoftAppId", "", "AZURE_CLIENT_ID", faketeams.DefaultAppID,
		"AZURE_TENANT_ID", "contoso-tenant", "AZURE_FEDERATED_TOKEN_FILE", file)
	stderr, code := runProbeCmd(t, context.Background(), env)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	issued := fake.IssuedTokens()
	if len(issued) != 1 || issued[0].Credential != faketeams.CredentialFederated || issued[0].Tenant != "contoso-tenant" {
		t.Errorf("tokens %+v, want one by the federated credential from the bot's tenant", issued)
	}
	wantRuns(t, dbURL, blockreport.RunFinished)
	if strings.Contains(stderr, jwt[:40]) {
		t.Error("the federated token reached stderr")
	}
}

// scripted401 is a population whose first conversation answers scripted
// steps and the rest are active.
func scripted401(steps ...faketeams.Step) []faketeams.Conversation {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 6, Tenants: 1, Seed: 9})
	for i := range pop {
		pop[i].State = faketeams.StateActive
	}
	pop[0].State, pop[0].Script = faketeams.StateScripted, steps
	return pop
}

// TestConnector401ThenCreated: a 401 makes the probe fetch a second token
// and retry; the 201 that follows makes the conversation reachable.
func TestConnector401ThenCreated(t *testing.T) {
	fake, dbURL := credentialsFixture(t, faketeams.Config{Population: scripted401(
		faketeams.Step{Status: 401, Code: "Unauthorized"}, faketeams.Step{Status: 201})})
	pem := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(pem, testAppCert(t).PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr, code := runProbeCmd(t, context.Background(), tlsEnv(t, fake, dbURL, "BLOCKREPORT_APP_CERTIFICATE_FILE", pem))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := fake.Stats().TokensIssued; n != 2 {
		t.Errorf("%d tokens issued, want 2 (the first, and a fresh one after the 401)", n)
	}
	runs := wantRuns(t, dbURL, blockreport.RunFinished)
	if runs[0].Totals[blockreport.StatusReachable] != 6 {
		t.Errorf("totals %v, want 6 reachable", runs[0].Totals)
	}
}

// TestConnector401TwiceInterrupts: a 401 to the retry with a fresh token
// too stops the run as interrupted (exit 1, resumable); the next run
// resumes it and finishes.
func TestConnector401TwiceInterrupts(t *testing.T) {
	fake, dbURL := credentialsFixture(t, faketeams.Config{Population: scripted401(
		faketeams.Step{Status: 401, Code: "Unauthorized"}, faketeams.Step{Status: 401, Code: "Unauthorized"}, faketeams.Step{Status: 201})})
	pem := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(pem, testAppCert(t).PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	env := tlsEnv(t, fake, dbURL, "BLOCKREPORT_APP_CERTIFICATE_FILE", pem, "BLOCKREPORT_CONCURRENCY", "1")
	stderr, code := runProbeCmd(t, context.Background(), env)
	last := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || !strings.Contains(last[len(last)-1], "interrupted") || !strings.Contains(last[len(last)-1], "HTTP 401") {
		t.Fatalf("exit %d, stderr %q; want 1 and the interrupted run naming the 401", code, stderr)
	}
	runs := wantRuns(t, dbURL, blockreport.RunInterrupted)
	stderr, code = runProbeCmd(t, context.Background(), env)
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	resumed := wantRuns(t, dbURL, blockreport.RunFinished)
	if resumed[0].ID != runs[0].ID || resumed[0].Total() != 6 || resumed[0].Totals[blockreport.StatusReachable] != 6 {
		t.Errorf("resumed run %+v, want run %d finished with 6 reachable", resumed[0], runs[0].ID)
	}
}

// TestCredentialUsageErrors: missing, ambiguous or contradictory
// credential settings are usage errors (exit 2) naming the settings.
func TestCredentialUsageErrors(t *testing.T) {
	fake, dbURL := credentialsFixture(t, faketeams.Config{})
	pem := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(pem, testAppCert(t).PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		kv   []string
		args []string
		want string
	}{
		{"secret and certificate", []string{"MicrosoftAppPassword", "pw", "AZURE_CLIENT_CERTIFICATE_PATH", pem}, nil,
			"a client secret (MicrosoftAppPassword) and a certificate (AZURE_CLIENT_CERTIFICATE_PATH) are both configured"},
		{"certificate and workload identity", []string{"AZURE_FEDERATED_TOKEN_FILE", pem}, []string{"--app-certificate-file", pem},
			"a certificate (--app-certificate-file) and a workload identity token file (AZURE_FEDERATED_TOKEN_FILE)"},
		{"nothing", nil, nil, "no app password"},
		{"unknown kind", nil, []string{"--auth", "password"}, "unknown credential kind"},
		{"certificate without file", nil, []string{"--auth", "certificate"}, "needs --app-certificate-file"},
		{"managed identity without tenant", []string{"MicrosoftAppType", "UserAssignedMSI"}, nil, "set --app-tenant"},
		{"secret against UserAssignedMSI", []string{"MicrosoftAppType", "UserAssignedMSI", "MicrosoftAppTenantId", "t"}, []string{"--auth", "secret"}, "contradicts MicrosoftAppType=UserAssignedMSI"},
		{"bad app type", []string{"MicrosoftAppType", "Multi"}, nil, "--app-type"},
		{"single tenant without tenant", []string{"MicrosoftAppType", "SingleTenant", "MicrosoftAppPassword", "pw"}, nil, "SingleTenant bot needs its tenant"},
		{"http authority", nil, []string{"--app-certificate-file", pem, "--authority-host", "http://127.0.0.1:1/"}, "want https"},
		{"token URL with certificate", nil, []string{"--app-certificate-file", pem, "--token-url", "https://x/t"}, "--token-url is for the client secret only"},
		{"missing certificate", nil, []string{"--app-certificate-file", pem + ".none"}, "--app-certificate-file"},
		{"not a certificate", nil, []string{"--app-certificate-file", dbURL[len("sqlite:"):]}, "neither a PEM nor a PKCS#12"},
		{"PKCS#12 wrong password", []string{"AZURE_CLIENT_CERTIFICATE_PASSWORD", "nope"}, []string{"--app-certificate-file", "../../auth/testdata/app.pfx"}, "wrong PKCS#12 password"},
		{"missing token file", []string{"AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/token"}, nil, "federated token file"},
		{"bad CA file", []string{"BLOCKREPORT_CA_FILE", pem + ".none"}, []string{"--app-certificate-file", pem}, "--ca-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stderr, code := runProbeCmd(t, context.Background(), tlsEnv(t, fake, dbURL, tt.kv...), tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want 2 and one line with %q", code, stderr, tt.want)
			}
			if strings.Contains(stderr, "nope") || strings.Contains(stderr, ": pw") {
				t.Errorf("a secret in %q", stderr)
			}
		})
	}
	wantRuns(t, dbURL)
	if n := len(fake.IssuedTokens()); n != 0 {
		t.Errorf("%d tokens issued on usage errors", n)
	}
}
