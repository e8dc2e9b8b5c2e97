package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/blockreport/blockreport/store"
)

// flagSet is a flag.FlagSet whose flags take their defaults from environment
// variables, which the help text names.
type flagSet struct {
	*flag.FlagSet
	getenv  func(string) string
	envErrs []string // environment variables whose values did not parse
}

func newFlagSet(name, synopsis string, getenv func(string) string, stderr io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: blockreport %s\n\nFlags (each also read from the environment variable shown):\n", synopsis)
		fs.PrintDefaults()
	}
	return &flagSet{FlagSet: fs, getenv: getenv}
}

// parse parses args and maps -h to errHelp and bad flags to a usage error.
func (f *flagSet) parse(args []string) error {
	if len(f.envErrs) > 0 {
		// Name the variable, never its value: it could be a secret.
		return usageErrorf("%s: environment variable %s has a value that does not parse", f.Name(), f.envErrs[0])
	}
	if err := f.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errHelp
		}
		return usageErrorf("%s: %v", f.Name(), err)
	}
	return nil
}

// lookup returns the first non-empty environment variable of names.
func (f *flagSet) lookup(names []string) (string, string) {
	for _, n := range names {
		if v := f.getenv(n); v != "" {
			return n, v
		}
	}
	return "", ""
}

func envNote(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (env " + strings.Join(names, ", ") + ")"
}

// stringVar defines a string flag whose default comes from the first set
// environment variable of env, else def.
func (f *flagSet) stringVar(p *string, name, def, usage string, env ...string) {
	if _, v := f.lookup(env); v != "" {
		def = v
	}
	f.StringVar(p, name, def, usage+envNote(env))
}

func (f *flagSet) intVar(p *int, name string, def int, usage string, env ...string) {
	if n, v := f.lookup(env); v != "" {
		if i, err := strconv.Atoi(v); err == nil {
			def = i
		} else {
			f.badEnv(n, v)
		}
	}
	f.IntVar(p, name, def, usage+envNote(env))
}

func (f *flagSet) floatVar(p *float64, name string, def float64, usage string, env ...string) {
	if n, v := f.lookup(env); v != "" {
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			def = x
		} else {
			f.badEnv(n, v)
		}
	}
	f.Float64Var(p, name, def, usage+envNote(env))
}

func (f *flagSet) boolVar(p *bool, name string, def bool, usage string, env ...string) {
	if n, v := f.lookup(env); v != "" {
		if b, err := strconv.ParseBool(v); err == nil {
			def = b
		} else {
			f.badEnv(n, v)
		}
	}
	f.BoolVar(p, name, def, usage+envNote(env))
}

func (f *flagSet) durationVar(p *time.Duration, name string, def time.Duration, usage string, env ...string) {
	if n, v := f.lookup(env); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			def = d
		} else {
			f.badEnv(n, v)
		}
	}
	f.DurationVar(p, name, def, usage+envNote(env))
}

// badEnv records an unparsable environment value; parse reports it.
func (f *flagSet) badEnv(name, _ string) {
	f.envErrs = append(f.envErrs, name)
}

// commonConfig holds the flags every command that touches the store has.
type commonConfig struct {
	DB        string
	LogFormat string
	LogLevel  string
}

const defaultDB = "sqlite:blockreport.db"

func (f *flagSet) common(c *commonConfig) {
	f.stringVar(&c.DB, "db", defaultDB, "database URL: postgres://... or sqlite:PATH", "BLOCKREPORT_DB", "DATABASE_URL")
	// The default may come from the environment with a password in it:
	// the help text shows it redacted.
	if fl := f.Lookup("db"); fl != nil {
		fl.DefValue = store.RedactURL(fl.DefValue)
	}
	f.stringVar(&c.LogFormat, "log-format", "text", "log format: text or json", "BLOCKREPORT_LOG_FORMAT")
	f.stringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error", "BLOCKREPORT_LOG_LEVEL")
}

// logger builds the logger the flags ask for, writing to stderr.
func (c commonConfig) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, usageErrorf("--log-format %q: want text or json", c.LogFormat)
}
