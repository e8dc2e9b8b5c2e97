// Command faketeams serves a simulated Microsoft Teams Bot Connector and
// token endpoint on loopback, for the demo, benchmarks and manual testing of
// blockreport. It never talks to Microsoft.
//
// Usage:
//
//	faketeams [flags]
//
// The population of conversations is generated from a seed (--users,
// --tenants, --blocked, ...) or read from a JSON Lines file
// (--population). --export-refs writes it as botbuilder
// ConversationReference JSON Lines that "blockreport import" accepts, with
// service URLs pointing at this server.
//
// On start it prints the service URL, the token URL and the credentials it
// accepts, then serves until interrupted. Counters are at GET /_fake/stats.
//
// Flags:
//
//	--listen ADDR            address to serve on (default 127.0.0.1:8790)
//	--app-id ID              accepted client_id (env FAKETEAMS_APP_ID)
//	--app-secret S           accepted client_secret (env FAKETEAMS_APP_SECRET); not a real secret
//	--bot-name NAME          bot name in exported references
//	--population FILE        read conversations from JSON Lines instead of generating them
//	--users N --tenants T    generated population size
//	--blocked --uninstalled --admin-disabled --deleted --transient --teams SHARE
//	                         shares of the generated population
//	--seed S                 seed of the population, latency and faults
//	--region R               service URL prefix of generated conversations (amer)
//	--export-refs FILE       write the population as ConversationReference JSON Lines
//	--export-population FILE write the population as faketeams JSON Lines
//	--token-ttl D            token lifetime (1h)
//	--tenant-rps N           requests/s per app per tenant (50; 0 disables)
//	--conversation-limits    per-conversation limits 7/1s, 8/2s, 60/30s, 1800/1h, reads double (true)
//	--latency D              median latency (120ms; 0 disables), log-normal
//	--latency-sigma F        log-normal sigma of the latency (0.8)
//	--arrival-jitter D       uniform delay before a request is counted (0)
//	--fault-5xx --fault-reset --fault-stall --fault-429 SHARE
//	                         shares of injected faults
//	--stall-for D            how long a stalled answer hangs (60s)
//	--burst-for D            how long an injected 429 burst lasts (2s)
//
// Credentials other than the secret (the token service is on a TLS listener
// whose CA is made at start; blockreport trusts it with --ca-file):
//
//	--tls-listen ADDR            address of the TLS listener (127.0.0.1:8791)
//	--ca-out FILE                write the TLS listener's CA certificate (PEM)
//	--app-certificate FILE       register the certificates of a PEM file (upload)
//	--app-certificate-out FILE   make an app certificate, register it, write it with its key
//	--trusted-issuer FILE        CA certificates for subject-name/issuer trust (x5c)
//	--federated-subject S        accept federated tokens for this subject (repeatable)
//	--federated-token-out FILE   write a federated token for the first subject (valid --token-ttl)
//	--identity-header H          the IDENTITY_HEADER the managed-identity endpoint wants (random)
//	--identity-tenant T          the tenant the managed identity lives in
package main

import (
	"bufio"
	"context"
	"crypto/sha1" //nolint:gosec // the portal's certificate thumbprint
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/blockreport/blockreport/faketeams"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is an error in the command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "faketeams: %v\n", err)
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

// config is the parsed command line.
type config struct {
	listen, population, exportRefs, exportPopulation string
	gen                                              faketeams.GenerateOptions
	server                                           faketeams.Config
	tenantRPS                                        int
	conversationLimits                               bool
	caOut, appCert, appCertOut, trustedIssuer        string
	federatedSubjects                                listFlag
	federatedTokenOut                                string
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("faketeams", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "faketeams serves a simulated Teams Bot Connector and token endpoint on loopback.\n\nUsage: faketeams [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	envOr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	sc := &cfg.server
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8790", "address to serve on (host:port; port 0 picks a free one)")
	fs.StringVar(&sc.AppID, "app-id", envOr("FAKETEAMS_APP_ID", faketeams.DefaultAppID), "client_id the token endpoint accepts (env FAKETEAMS_APP_ID)")
	fs.StringVar(&sc.AppSecret, "app-secret", envOr("FAKETEAMS_APP_SECRET", faketeams.DefaultAppSecret), "client_secret the token endpoint accepts (env FAKETEAMS_APP_SECRET); a fake, not a real secret")
	fs.StringVar(&sc.BotName, "bot-name", faketeams.DefaultBotName, "bot name in exported references")
	fs.StringVar(&cfg.population, "population", "", "read the population from this JSON Lines `file` (one conversation per line) instead of generating it")
	fs.IntVar(&cfg.gen.Users, "users", 1000, "number of generated conversations")
	fs.IntVar(&cfg.gen.Tenants, "tenants", 3, "number of generated tenants")
	fs.Float64Var(&cfg.gen.Blocked, "blocked", 0.06, "share of generated conversations where the user blocked the bot")
	fs.Float64Var(&cfg.gen.Uninstalled, "uninstalled", 0.04, "share of generated conversations where the bot is uninstalled")
	fs.Float64Var(&cfg.gen.AdminDisabled, "admin-disabled", 0.01, "share of generated conversations where an admin disabled the bot")
	fs.Float64Var(&cfg.gen.Deleted, "deleted", 0.01, "share of generated conversations that no longer exist (404)")
	fs.Float64Var(&cfg.gen.Transient, "transient", 0.02, "share of generated conversations that fail once (5xx, 412 or 429) and then succeed")
	fs.Float64Var(&cfg.gen.TeamShare, "teams", 0.05, "share of generated conversations that are team or group-chat installations")
	fs.Uint64Var(&cfg.gen.Seed, "seed", 1, "seed of the generated population, latency and faults")
	fs.StringVar(&cfg.gen.Region, "region", faketeams.DefaultRegion, "service URL prefix of generated conversations (amer, emea, teams, gcc, ...)")
	fs.StringVar(&cfg.exportRefs, "export-refs", "", "write the population as botbuilder ConversationReference JSON Lines to this `file` (for blockreport import)")
	fs.StringVar(&cfg.exportPopulation, "export-population", "", "write the population as faketeams JSON Lines to this `file` (for --population)")
	fs.DurationVar(&sc.TokenTTL, "token-ttl", time.Hour, "lifetime of issued tokens")
	fs.IntVar(&cfg.tenantRPS, "tenant-rps", 50, "requests per second allowed per app per tenant, sliding 1 s window (0 disables)")
	fs.BoolVar(&cfg.conversationLimits, "conversation-limits", true, "apply per-conversation limits: writes 7/1s, 8/2s, 60/30s, 1800/1h; reads double")
	fs.DurationVar(&sc.Latency, "latency", 120*time.Millisecond, "median latency of connector answers, log-normal with a long tail (0 disables)")
	fs.DurationVar(&sc.ArrivalJitter, "arrival-jitter", 0, "delay each request by a uniform draw in [0, D) before it is counted against the limits (network jitter; 0 disables)")
	fs.Float64Var(&sc.LatencySigma, "latency-sigma", 0.8, "sigma of the log-normal latency (larger: longer tail)")
	fs.Float64Var(&sc.Faults.ServerErrors, "fault-5xx", 0, "share of answers replaced by 500, 502, 503, 504 or 412")
	fs.Float64Var(&sc.Faults.Resets, "fault-reset", 0, "share of requests whose connection is reset")
	fs.Float64Var(&sc.Faults.Stalls, "fault-stall", 0, "share of requests that stall for --stall-for")
	fs.Float64Var(&sc.Faults.Throttles, "fault-429", 0, "share of requests that start a burst of 429s for their tenant")
	fs.DurationVar(&sc.StallFor, "stall-for", 60*time.Second, "how long a stalled answer hangs")
	fs.DurationVar(&sc.Faults.BurstFor, "burst-for", 2*time.Second, "how long an injected 429 burst lasts")
	en := &sc.Entra
	fs.StringVar(&en.TLSListen, "tls-listen", "127.0.0.1:8791", "address of the TLS listener (token service for azidentity; host:port, port 0 picks one)")
	fs.StringVar(&cfg.caOut, "ca-out", "", "write the TLS listener's CA certificate (PEM) to this `file`, for blockreport --ca-file")
	fs.StringVar(&cfg.appCert, "app-certificate", "", "register the certificates of this PEM `file` with the app (as uploaded under Certificates & secrets)")
	fs.StringVar(&cfg.appCertOut, "app-certificate-out", "", "make an app certificate, register it and write it with its private key (PEM) to this `file`, for blockreport --app-certificate-file")
	fs.StringVar(&cfg.trustedIssuer, "trusted-issuer", "", "trust app certificates issued by the CAs of this PEM `file` (subject-name/issuer trust; blockreport --send-certificate-chain)")
	fs.Var(&cfg.federatedSubjects, "federated-subject", "accept federated tokens (workload identity) for this subject, e.g. system:serviceaccount:NS:NAME; repeatable")
	fs.StringVar(&cfg.federatedTokenOut, "federated-token-out", "", "write a federated token for the first --federated-subject to this `file`, for AZURE_FEDERATED_TOKEN_FILE (valid --token-ttl)")
	fs.StringVar(&en.IdentityHeader, "identity-header", envOr("FAKETEAMS_IDENTITY_HEADER", ""), "IDENTITY_HEADER the managed-identity endpoint requires (default random; env FAKETEAMS_IDENTITY_HEADER)")
	fs.StringVar(&en.IdentityTenant, "identity-tenant", faketeams.DefaultIdentityTenant, "tenant the managed identity (client id --app-id) lives in")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, usageError{err}
	}
	if fs.NArg() > 0 {
		return cfg, usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.population != "" {
		for _, name := range []string{"users", "tenants", "blocked", "uninstalled", "admin-disabled", "deleted", "transient", "teams", "region"} {
			if set[name] {
				return cfg, usageErrorf("--population and --%s exclude each other", name)
			}
		}
	}
	switch {
	case cfg.gen.Users < 0 || cfg.gen.Tenants < 1:
		return cfg, usageErrorf("--users must be >= 0 and --tenants >= 1")
	case cfg.tenantRPS < 0:
		return cfg, usageErrorf("--tenant-rps must be >= 0")
	case sc.Latency < 0 || sc.ArrivalJitter < 0 || sc.TokenTTL <= 0 || sc.StallFor <= 0 || sc.Faults.BurstFor <= 0:
		return cfg, usageErrorf("durations must be positive")
	}
	for name, v := range map[string]float64{
		"blocked": cfg.gen.Blocked, "uninstalled": cfg.gen.Uninstalled, "admin-disabled": cfg.gen.AdminDisabled,
		"deleted": cfg.gen.Deleted, "transient": cfg.gen.Transient, "teams": cfg.gen.TeamShare,
	} {
		if v < 0 || v > 1 {
			return cfg, usageErrorf("--%s must be a share between 0 and 1", name)
		}
	}
	if g := cfg.gen; g.Blocked+g.Uninstalled+g.AdminDisabled+g.Deleted+g.Transient > 1 {
		return cfg, usageErrorf("state shares add up to more than 1")
	}
	if f := sc.Faults; f.ServerErrors < 0 || f.Resets < 0 || f.Stalls < 0 || f.Throttles < 0 ||
		f.ServerErrors+f.Resets+f.Stalls+f.Throttles > 1 {
		return cfg, usageErrorf("fault shares must be between 0 and 1 and add up to at most 1")
	}
	if cfg.federatedTokenOut != "" && len(cfg.federatedSubjects) == 0 {
		return cfg, usageErrorf("--federated-token-out needs a --federated-subject")
	}
	sc.Entra.FederatedSubjects = cfg.federatedSubjects
	sc.Listen = cfg.listen
	sc.Seed = cfg.gen.Seed
	limits := faketeams.Limits{TenantPerSecond: cfg.tenantRPS}
	if cfg.conversationLimits {
		limits.ConversationWrites = faketeams.DefaultLimits().ConversationWrites
	}
	sc.Limits = &limits
	return cfg, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.population != "" {
		f, err := os.Open(cfg.population)
		if err != nil {
			return fmt.Errorf("open population: %w", err)
		}
		pop, err := faketeams.ReadPopulation(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read population %s: %w", cfg.population, err)
		}
		cfg.server.Population = pop
	} else {
		cfg.server.Population = faketeams.Generate(cfg.gen)
	}

	appCert, err := registerCertificates(&cfg)
	if err != nil {
		return err
	}
	srv, err := faketeams.Start(cfg.server)
	if err != nil {
		return fmt.Errorf("start faketeams: %w", err)
	}
	defer srv.Close()
	if err := writeCredentials(cfg, srv, appCert); err != nil {
		return err
	}
	if cfg.exportRefs != "" {
		if err := writeAtomic(cfg.exportRefs, srv.WriteReferences); err != nil {
			return err
		}
	}
	if cfg.exportPopulation != "" {
		pop := srv.Population()
		if err := writeAtomic(cfg.exportPopulation, func(w io.Writer) error { return faketeams.WritePopulation(w, pop) }); err != nil {
			return err
		}
	}
	region := cfg.gen.Region
	if cfg.population != "" && len(cfg.server.Population) > 0 && cfg.server.Population[0].Region != "" {
		region = cfg.server.Population[0].Region
	}
	fmt.Fprintf(stdout, "faketeams listening on %s\n", srv.URL())
	fmt.Fprintf(stdout, "service URL: %s (any prefix works: %s, %s)\n", srv.ServiceURL(region), srv.ServiceURL("teams"), srv.ServiceURL("gcc"))
	fmt.Fprintf(stdout, "token URL:   %s\n", srv.TokenURL("botframework.com"))
	fmt.Fprintf(stdout, "app id:      %s\n", cfg.server.AppID)
	fmt.Fprintf(stdout, "app secret:  %s (accepted by this fake only; not a real secret)\n", cfg.server.AppSecret)
	fmt.Fprintf(stdout, "scope:       %s\n", faketeams.Scope)
	fmt.Fprintf(stdout, "authority:   %s (TLS; blockreport --authority-host, trusting --ca-file)\n", srv.AuthorityHost())
	if cfg.caOut != "" {
		fmt.Fprintf(stdout, "CA:          %s\n", cfg.caOut)
	}
	for _, c := range cfg.server.Entra.Certificates {
		fmt.Fprintf(stdout, "certificate: %s (thumbprint %X)\n", c.Subject, sha1.Sum(c.Raw)) //nolint:gosec
	}
	if cfg.appCertOut != "" {
		fmt.Fprintf(stdout, "app cert:    %s (certificate and key, for --app-certificate-file)\n", cfg.appCertOut)
	}
	if cfg.federatedTokenOut != "" {
		fmt.Fprintf(stdout, "federated:   %s (AZURE_FEDERATED_TOKEN_FILE, subject %s)\n", cfg.federatedTokenOut, cfg.federatedSubjects[0])
	}
	fmt.Fprintf(stdout, "identity:    IDENTITY_ENDPOINT=%s IDENTITY_HEADER=%s (a fake, not a real secret)\n", srv.IdentityEndpoint(), srv.IdentityHeader())
	fmt.Fprintf(stdout, "stats:       %s/_fake/stats\n", srv.URL())
	fmt.Fprintf(stdout, "population:  %s\n", summary(cfg.server.Population))
	if cfg.exportRefs != "" {
		fmt.Fprintf(stdout, "references:  %s\n", cfg.exportRefs)
	}

	<-ctx.Done()
	if err := srv.Close(); err != nil {
		return err
	}
	st := srv.Stats()
	fmt.Fprintf(stdout, "stopped: %d tokens issued, %d answers throttled\n", st.TokensIssued, st.Throttled)
	tenants := make([]string, 0, len(st.TenantWindows))
	for t := range st.TenantWindows {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, t := range tenants {
		w := st.TenantWindows[t]
		fmt.Fprintf(stdout, "busiest 1s:  tenant %s: %d arrived, %d accepted (limit %d)\n", t, w.Arrived, w.Accepted, w.Limit)
	}
	for _, w := range st.ConversationWindows {
		fmt.Fprintf(stdout, "busiest %s\n", w)
	}
	return nil
}

// registerCertificates loads --app-certificate and --trusted-issuer and
// makes the --app-certificate-out certificate, registering them.
func registerCertificates(cfg *config) (*faketeams.AppCertificate, error) {
	en := &cfg.server.Entra
	for _, f := range []struct {
		path string
		into *[]*x509.Certificate
	}{{cfg.appCert, &en.Certificates}, {cfg.trustedIssuer, &en.TrustedIssuers}} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("read certificates: %w", err)
		}
		certs, err := faketeams.ParseCertificatesPEM(b)
		if err != nil {
			return nil, fmt.Errorf("read certificates from %s: %w", f.path, err)
		}
		*f.into = append(*f.into, certs...)
	}
	if cfg.appCertOut == "" {
		return nil, nil
	}
	c, err := faketeams.NewAppCertificate(faketeams.AppCertificateOptions{Subject: "faketeams app"})
	if err != nil {
		return nil, fmt.Errorf("make an app certificate: %w", err)
	}
	en.Certificates = append(en.Certificates, c.Cert)
	return c, nil
}

// writeCredentials writes --ca-out, --app-certificate-out and
// --federated-token-out.
func writeCredentials(cfg config, srv *faketeams.Server, appCert *faketeams.AppCertificate) error {
	write := func(path string, b []byte) error {
		if path == "" {
			return nil
		}
		return writeAtomic(path, func(w io.Writer) error { _, err := w.Write(b); return err })
	}
	if err := write(cfg.caOut, srv.CACertPEM()); err != nil {
		return err
	}
	if appCert != nil {
		if err := write(cfg.appCertOut, appCert.PEM()); err != nil {
			return err
		}
	}
	if cfg.federatedTokenOut != "" {
		tok, err := srv.FederatedToken(cfg.federatedSubjects[0], cfg.server.TokenTTL)
		if err != nil {
			return fmt.Errorf("make a federated token: %w", err)
		}
		return write(cfg.federatedTokenOut, []byte(tok))
	}
	return nil
}

// summary counts the population by state and tenant.
func summary(pop []faketeams.Conversation) string {
	states := map[faketeams.State]int{}
	tenants := map[string]bool{}
	for _, c := range pop {
		states[c.State]++
		tenants[c.TenantID] = true
	}
	parts := make([]string, 0, len(states))
	for st, n := range states {
		parts = append(parts, fmt.Sprintf("%s %d", st, n))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d conversations in %d tenants (%s)", len(pop), len(tenants), strings.Join(parts, ", "))
}

// writeAtomic writes path through a temporary file in the same directory.
func writeAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	bw := bufio.NewWriter(f)
	if err := write(bw); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
