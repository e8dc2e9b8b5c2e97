package main

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"strings"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
	"github.com/blockreport/blockreport/graph"
	"github.com/blockreport/blockreport/store"
)

// graphConfig turns Microsoft Graph on: the cross-check of ambiguous
// verdicts, the directory's names and departments, tenant names and the
// coverage of every enabled user.
type graphConfig struct {
	TeamsAppID    string
	URL           string
	Coverage      bool
	SkipReachable bool
	Rate          float64
}

func (g *graphConfig) register(fs *flagSet) {
	fs.stringVar(&g.TeamsAppID, "teams-app-id", "", "turns Microsoft Graph on: the bot's Teams app id in the app catalog, or its manifest id (resolved per tenant)", "BLOCKREPORT_TEAMS_APP_ID")
	fs.stringVar(&g.URL, "graph-url", "", "Microsoft Graph root (default per --cloud: https://graph.microsoft.com/v1.0, gcch https://graph.microsoft.us/v1.0, dod https://dod-graph.microsoft.us/v1.0); https, plain http only to a loopback host", "BLOCKREPORT_GRAPH_URL")
	fs.boolVar(&g.Coverage, "coverage", false, "with --teams-app-id: list every enabled member of each consented tenant and report who the bot cannot reach; users who installed the app without a stored reference are probed too", "BLOCKREPORT_COVERAGE")
	fs.boolVar(&g.SkipReachable, "graph-skip-reachable", false, "with --teams-app-id: do not look up the installation of users the connector reached (it can only add a note); halves Graph's time on a healthy bot", "BLOCKREPORT_GRAPH_SKIP_REACHABLE")
	fs.floatVar(&g.Rate, "graph-rate", graph.DefaultTeamsRate, "installedApps requests per second per tenant (Graph allows 30; each $batch member counts)", "BLOCKREPORT_GRAPH_RATE")
}

func (g *graphConfig) validate(cmd string) error {
	g.TeamsAppID, g.URL = strings.TrimSpace(g.TeamsAppID), strings.TrimSpace(g.URL)
	if g.TeamsAppID == "" {
		switch {
		case g.URL != "":
			return usageErrorf("%s: --graph-url needs --teams-app-id (Graph is on only with the app's id)", cmd)
		case g.Coverage:
			return usageErrorf("%s: --coverage needs --teams-app-id (Graph lists the users)", cmd)
		}
		return nil
	}
	if g.URL != "" {
		if err := graph.CheckURL(g.URL); err != nil {
			return usageErrorf("%s: --graph-url: %v", cmd, err)
		}
	}
	if g.Rate <= 0 {
		return usageErrorf("%s: --graph-rate must be positive", cmd)
	}
	return nil
}

func (g graphConfig) enabled() bool { return g.TeamsAppID != "" }

// checker builds the Graph client and the cross-check stage over db.
func (g graphConfig) checker(cred *auth.Credential, cfg probeConfig, db *store.DB, logger *slog.Logger) (*graph.Checker, *graph.Client, error) {
	var hc *http.Client
	if cfg.cred.rootCAs != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: cfg.cred.rootCAs, MinVersion: tls.VersionTLS12}
		hc = &http.Client{Transport: tr}
	}
	cloud := blockreport.Cloud(cfg.Cloud)
	c, err := graph.New(graph.Config{
		URL: g.URL, Cloud: cloud, Credential: cred, AppID: g.TeamsAppID, TeamsRate: g.Rate,
		BackoffBase: cfg.backoffBase, HTTPClient: hc, Logger: logger,
	})
	if err != nil {
		return nil, nil, usageErrorf("--graph-url: %v", err)
	}
	if cloud == blockreport.CloudGCCH || cloud == blockreport.CloudDoD {
		logger.Warn("Graph's per-user app installation APIs are not supported with app-only tokens in GCC High and DoD: expect every tenant to be unavailable", "cloud", cloud)
	}
	logger.Info("microsoft graph on", "url", c.URL(), "scope", c.Scope(), "teams_app_id", g.TeamsAppID, "coverage", g.Coverage)
	k := graph.NewChecker(graph.CheckerConfig{Client: c, Store: db, SkipReachable: g.SkipReachable, Logger: logger, Now: cfg.now,
		Coverage: g.Coverage, GlobalServiceURL: graph.GlobalServiceURL(cloud), BotID: "28:" + cfg.cred.AppID})
	return k, c, nil
}
