package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/runs"
	"github.com/blockreport/blockreport/store"
)

// checkConfig is the configuration of the check command: everything probe
// and run read, and where run would write its reports.
type checkConfig struct {
	probe probeConfig
	Out   string
}

const checkSynopsis = "check [--db URL] [--app-id ID] [--auth KIND] [--app-password-file FILE] [--mode typing|message|members] [--message-file FILE] [--out DIR] [flags]" + credentialsHelp

// runCheck is the preflight of a run without probing anyone: the store,
// the credentials and a token, the allow-list's coverage of the stored
// service URLs, the message file and the output directory, one line each.
// Exit 0 when everything is ready (warnings allowed), 2 when something a
// flag or file must fix is wrong, else 1 when a check failed (an
// unreachable database, a refused secret, an unwritable directory).
func runCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg checkConfig
	fs := newFlagSet("check", checkSynopsis, getenv, stderr)
	fs.common(&cfg.probe.common)
	cfg.probe.register(fs, getenv)
	fs.stringVar(&cfg.Out, "out", "", "directory run would write its reports into (checked, not created; empty: not checked)", "BLOCKREPORT_OUT")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("check: unexpected argument %q", fs.Arg(0))
	}
	logger, err := cfg.probe.common.logger(stderr)
	if err != nil {
		return err
	}
	c := &checker{w: stdout}
	pc := &cfg.probe

	// Each step reports one line (or a few); later steps skip what an
	// earlier failure makes meaningless. New steps (Graph: one per tenant)
	// go in this list.
	var db *store.DB
	c.step("database", func() (string, error) {
		var err error
		if db, err = openExisting(ctx, pc.common.DB, logger); err != nil {
			return "", err
		}
		return describeStore(ctx, db)
	})
	if db != nil {
		defer db.Close()
	}
	configured := c.step("configuration", func() (string, error) {
		if err := pc.validate("check"); err != nil {
			return "", err
		}
		return fmt.Sprintf("mode %s, cloud %s, %g requests/s per tenant, %d in flight", pc.Mode, pc.Cloud, pc.Rate, pc.Concurrency), nil
	})
	credentials := configured && c.step("credentials", func() (string, error) {
		if err := pc.cred.check("check", getenv); err != nil {
			return "", err
		}
		return pc.cred.describe(), nil
	})
	c.step("token", func() (string, error) {
		if !credentials {
			return "", errSkipped
		}
		tcfg := pc.proberConfig(logger)
		tcfg.Mode = probe.ModeTyping // the token does not depend on the mode; the message file has its own step
		cred, err := pc.cred.credential(probe.Cloud(pc.Cloud), logger)
		if err != nil {
			return "", err
		}
		tcfg.Credential = cred
		p, err := probe.New(tcfg)
		if err != nil {
			return "", usageErrorf("%v", err)
		}
		if err := p.CheckToken(); err != nil {
			return "", err
		}
		return "a Bot Connector token was issued", nil
	})
	c.step("allow-list", func() (string, error) {
		if db == nil || !configured {
			return "", errSkipped
		}
		check, err := probe.ServiceURLChecker(probe.Cloud(pc.Cloud), pc.AllowHosts)
		if err != nil {
			return "", usageErrorf("--allow-host: %v", err)
		}
		cov, err := runs.CheckCoverage(ctx, db, check)
		if err != nil {
			return "", err
		}
		if err := cov.Err(); err != nil {
			return "", usageErrorf("%v: add the hosts that are yours with --allow-host (or pick the right --cloud)", err)
		}
		for _, h := range cov.RefusedHosts() {
			c.warn("allow-list", fmt.Sprintf("%d references point at %s, which may not receive the token (%v): a run records them as invalid",
				h.References, h.Host, h.Refused))
		}
		return fmt.Sprintf("%d of %d references point at allowed hosts", cov.Allowed, cov.Allowed+cov.Refused), nil
	})
	c.step("message file", func() (string, error) {
		if probe.Mode(pc.Mode) != probe.ModeMessage {
			return "not needed in " + pc.Mode + " mode", nil
		}
		if !configured {
			return "", errSkipped
		}
		if err := pc.loadMessage("check"); err != nil {
			return "", err
		}
		if err := probe.CheckMessage(pc.message); err != nil {
			return "", usageErrorf("--message-file %s: %v", pc.MessageFile, err)
		}
		return fmt.Sprintf("%s (%d bytes): every reachable user receives it", pc.MessageFile, len(pc.message)), nil
	})
	c.step("output directory", func() (string, error) {
		if cfg.Out == "" {
			return "not checked (no --out)", nil
		}
		return checkOutDirOnly(cfg.Out)
	})
	return c.result()
}

// errSkipped marks a step that an earlier failure made meaningless.
var errSkipped = errors.New("skipped")

// checker prints the lines of the check command and keeps the worst exit
// code.
type checker struct {
	w             io.Writer
	failed, steps int
	code          int
}

// step runs fn and prints its line; it reports whether the step passed.
func (c *checker) step(name string, fn func() (string, error)) bool {
	c.steps++
	detail, err := fn()
	switch {
	case errors.Is(err, errSkipped):
		fmt.Fprintf(c.w, "%-8s %-17s skipped: an earlier check failed\n", "-", name)
		return false
	case err != nil:
		c.failed++
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		c.code = max(c.code, code)
		fmt.Fprintf(c.w, "%-8s %-17s %s\n", "FAILED", name, oneLine(err.Error()))
		return false
	}
	fmt.Fprintf(c.w, "%-8s %-17s %s\n", "ok", name, detail)
	return true
}

func (c *checker) warn(name, detail string) {
	fmt.Fprintf(c.w, "%-8s %-17s %s\n", "warning", name, detail)
}

func (c *checker) result() error {
	if c.failed == 0 {
		return nil
	}
	return withCode(c.code, fmt.Errorf("check: %d of %d checks failed", c.failed, c.steps))
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// describeStore says what is in the store and which run comes next; a
// store without references fails, as run would.
func describeStore(ctx context.Context, db *store.DB) (string, error) {
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return "", err
	}
	n, err := db.CountReferences(ctx)
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", errors.New("the store holds no conversation references: import them with \"blockreport import\" or point --db at the bot's database")
	}
	next := "the next probe starts a new run"
	if r, ok, err := db.UnfinishedRun(ctx); err != nil {
		return "", err
	} else if ok {
		next = fmt.Sprintf("the next probe resumes run %d (%s, %d results so far)", r.ID, r.State, r.Total())
	}
	return fmt.Sprintf("%s (%s, schema %d): %d references; %s", db.Name(), db.Driver(), v, n, next), nil
}

// checkOutDirOnly is checkOutDir without creating anything: an existing
// directory must take a file; a missing one must be creatable in its
// nearest existing parent.
func checkOutDirOnly(dir string) (string, error) {
	target, missing := dir, false
	for {
		fi, err := os.Stat(target)
		if err == nil {
			if !fi.IsDir() {
				return "", fmt.Errorf("--out %s: %s is not a directory", dir, target)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", outDirError(dir, err)
		}
		missing = true
		parent := filepath.Dir(target)
		if parent == target {
			return "", fmt.Errorf("--out %s: no existing parent directory", dir)
		}
		target = parent
	}
	f, err := os.CreateTemp(target, ".blockreport-check-*")
	if err != nil {
		return "", outDirError(dir, err)
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return "", outDirError(dir, err)
	}
	if missing {
		return fmt.Sprintf("%s does not exist yet; run creates it in %s, which is writable", dir, target), nil
	}
	return dir + " is writable", nil
}
