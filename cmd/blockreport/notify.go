package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"

	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/report"
	"github.com/blockreport/blockreport/store"
)

// notifyConfig is --notify-conversation and --report-url (run and report).
// The report command also needs the connector flags a probe has (app id,
// credential, cloud, allow-list); run uses its own probe flags.
type notifyConfig struct {
	Conversation string
	ReportURL    string

	connector *probeConfig // report command: its own connector flags
}

func (n *notifyConfig) register(fs *flagSet) {
	fs.stringVar(&n.Conversation, "notify-conversation", "", "after the reports, post a summary card (headline, count and change per status, where the report is) into this stored conversation id, e.g. a leadership channel where the bot is installed", "BLOCKREPORT_NOTIFY_CONVERSATION")
	fs.stringVar(&n.ReportURL, "report-url", "", "with --notify-conversation: where readers find the report (an https URL the card's button opens)", "BLOCKREPORT_REPORT_URL")
}

// registerConnector defines, for the report command, the flags of the
// Bot Connector client the card goes through.
func (n *notifyConfig) registerConnector(fs *flagSet) {
	n.connector = &probeConfig{}
	n.connector.cred.register(fs)
	c := n.connector
	fs.stringVar(&c.Cloud, "cloud", "public", "with --notify-conversation: cloud: public, gcc, gcch or dod", "BLOCKREPORT_CLOUD")
	fs.Var(&c.AllowHosts, "allow-host", "with --notify-conversation: extra host allowed to receive the connector token; repeatable (env BLOCKREPORT_ALLOW_HOSTS, comma list)")
	fs.stringVar(&c.GCCServiceURL, "gcc-service-url", "", "with --notify-conversation: service URL to retry a 403 InvalidBotApiHost on (tests)", "BLOCKREPORT_GCC_SERVICE_URL")
	if v := fs.getenv("BLOCKREPORT_ALLOW_HOSTS"); v != "" {
		_ = c.AllowHosts.Set(v)
	}
}

// check validates the flags; for the report command it also checks the
// connector flags, but only when a card is to be sent.
func (n *notifyConfig) check(cmd string, getenv func(string) string) error {
	if n.Conversation == "" {
		if n.ReportURL != "" {
			return usageErrorf("%s: --report-url needs --notify-conversation", cmd)
		}
		return nil
	}
	if n.ReportURL != "" {
		u, err := url.Parse(n.ReportURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return usageErrorf("%s: --report-url %q: want an absolute http or https URL", cmd, n.ReportURL)
		}
	}
	if n.connector == nil {
		return nil
	}
	c := n.connector
	switch probe.Cloud(c.Cloud) {
	case probe.CloudPublic, probe.CloudGCC, probe.CloudGCCH, probe.CloudDoD:
	default:
		return usageErrorf("%s: --cloud %q: want public, gcc, gcch or dod", cmd, c.Cloud)
	}
	c.Mode = string(probe.ModeTyping)
	return c.cred.check(cmd, getenv)
}

// preflight makes sure, before any probing, that the conversation is
// stored and that its service host may receive the token.
func (n notifyConfig) preflight(ctx context.Context, db *store.DB, cfg probeConfig) error {
	if n.Conversation == "" {
		return nil
	}
	ref, err := db.ReferenceByConversation(ctx, n.Conversation)
	if errors.Is(err, store.ErrNotFound) {
		return usageErrorf("--notify-conversation %s: no stored conversation reference has this id (import the channel's reference, or see \"blockreport history\")", n.Conversation)
	}
	if err != nil {
		return err
	}
	check, err := probe.ServiceURLChecker(probe.Cloud(cfg.Cloud), cfg.AllowHosts)
	if err != nil {
		return usageErrorf("--notify-conversation: %v", err)
	}
	if err := check(ref.ServiceURL); err != nil {
		return usageErrorf("--notify-conversation %s: its service URL may not receive the token (%v): add the host with --allow-host", n.Conversation, err)
	}
	return nil
}

// send posts the card of r into the conversation through a Bot Connector
// client made from cfg: the same pacing, allow-list and retries as a probe.
func (n notifyConfig) send(ctx context.Context, db *store.DB, cfg probeConfig, r *report.Report, paths []string, logger *slog.Logger, stderr io.Writer) error {
	if n.Conversation == "" {
		return nil
	}
	if err := n.preflight(ctx, db, cfg); err != nil {
		return err
	}
	ref, err := db.ReferenceByConversation(ctx, n.Conversation)
	if err != nil {
		return err
	}
	pcfg := cfg.proberConfig(logger)
	pcfg.Mode, pcfg.Message = probe.ModeTyping, nil // the card is its own message
	cred, err := cfg.cred.credential(probe.Cloud(cfg.Cloud), logger)
	if err != nil {
		return fmt.Errorf("--notify-conversation: %w", err)
	}
	pcfg.Credential = cred
	prober, err := probe.New(pcfg)
	if err != nil {
		return fmt.Errorf("--notify-conversation: %w", err)
	}
	files := make([]string, len(paths))
	for i, p := range paths {
		files[i] = filepath.Base(p)
	}
	res, err := prober.Post(ctx, ref, report.CardActivity(r, n.ReportURL, files))
	if err != nil {
		return fmt.Errorf("--notify-conversation %s: the summary card was not posted: %w", n.Conversation, err)
	}
	if res.Status != "reachable" {
		return fmt.Errorf("--notify-conversation %s: the summary card was not posted: %s (%s, HTTP %d)", n.Conversation, res.Status.Label(), res.Reason, res.HTTPStatus)
	}
	fmt.Fprintf(stderr, "posted the summary of run %d into conversation %s\n", r.Run.ID, n.Conversation)
	return nil
}
