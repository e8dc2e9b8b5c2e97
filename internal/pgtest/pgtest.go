// Package pgtest gives tests a real PostgreSQL database.
//
// It starts a throwaway cluster in a temporary directory from the server
// binaries on the machine (initdb, pg_ctl), once per test binary, and hands
// each caller a fresh database on it. When BLOCKREPORT_TEST_PG names a
// server URL, that server is used instead. PostgreSQL refuses to run as root,
// so under root the cluster runs as the "postgres" user (or "nobody").
//
// When no PostgreSQL can be had, tests are skipped with the reason, except
// under CI=true, where they fail: CI must never pass by skipping them.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/lib/pq" // PostgreSQL driver
)

// EnvURL names the environment variable that points tests at an existing
// PostgreSQL server instead of a throwaway cluster.
const EnvURL = "BLOCKREPORT_TEST_PG"

var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
	dbSeq      atomic.Int64
)

// Main runs the tests of a package and stops the shared cluster afterwards.
// Call it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.stop()
		os.RemoveAll(shared.dir)
	}
	return code
}

// URL returns the URL of a new, empty database for the test. The database is
// dropped when the test ends.
func URL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		sharedOnce.Do(func() { shared, sharedErr = start() })
		if sharedErr != nil {
			unavailable(tb, sharedErr)
		}
		base = shared.URL("postgres")
	}
	return newDatabase(tb, base)
}

// unavailable skips the test, or fails it under CI.
func unavailable(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("PostgreSQL is required under CI=true: %v", err)
	}
	tb.Skipf("no PostgreSQL (%v); install the server binaries or set %s", err, EnvURL)
}

func newDatabase(tb testing.TB, base string) string {
	tb.Helper()
	admin, err := sql.Open("postgres", base)
	if err != nil {
		unavailable(tb, err)
	}
	defer admin.Close()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		unavailable(tb, fmt.Errorf("create database %s: %w", name, err))
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("parse %s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	tb.Cleanup(func() {
		admin, err := sql.Open("postgres", base)
		if err != nil {
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return u.String()
}

// Cluster is a throwaway PostgreSQL cluster in a temporary directory.
type Cluster struct {
	dir  string
	port int
	bin  string
	cred *credential // run the server as this user (when the tests run as root)
}

// NewCluster starts a cluster of the test's own, which the test may stop and
// start again (to simulate an outage). It is removed when the test ends.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := start()
	if err != nil {
		unavailable(tb, err)
	}
	tb.Cleanup(func() {
		c.stop()
		os.RemoveAll(c.dir)
	})
	return c
}

// URL returns the URL of database name on the cluster.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// NewDatabase creates an empty database on the cluster and returns its URL.
func (c *Cluster) NewDatabase(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, c.URL("postgres"))
}

// Stop stops the server (fast shutdown: clients are disconnected).
func (c *Cluster) Stop() error { return c.stop() }

// Start starts the server again on the same port and data directory.
func (c *Cluster) Start() error { return c.startServer() }

func (c *Cluster) stop() error {
	return c.pgctl("-D", c.data(), "-m", "fast", "-w", "stop")
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) startServer() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", c.port, c.dir)
	return c.pgctl("-D", c.data(), "-o", opts, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start")
}

func (c *Cluster) pgctl(args ...string) error {
	return c.run(filepath.Join(c.bin, "pg_ctl"), args...)
}

func (c *Cluster) run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = c.dir
	if c.cred != nil {
		runAs(cmd, c.cred)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v: %w: %s", filepath.Base(name), args, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func start() (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "blockreport-pg-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	c := &Cluster{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		c.cred = cred
		if err := os.Chown(dir, cred.uid, cred.gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	if c.port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.run(filepath.Join(bin, "initdb"), "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.startServer(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// findBin finds the directory with initdb and pg_ctl.
func findBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	for i := len(matches) - 1; i >= 0; i-- {
		return filepath.Dir(matches[i]), nil
	}
	return "", errors.New("initdb and pg_ctl not found (apt-get install postgresql)")
}

// credential is the user and group a command runs as.
type credential struct{ uid, gid int }

func unprivileged() (*credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &credential{uid: uid, gid: gid}, nil
	}
	return nil, errors.New("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
