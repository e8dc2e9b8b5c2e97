//go:build unix

// Package azuritetest starts Azurite, Microsoft's Azure Storage emulator,
// for tests: in memory, on loopback ports the system picks, with
// --skipApiVersionCheck (azblob v1.8.3 sends a newer x-ms-version than
// Azurite 3.37.0 knows).
//
// The emulator is found at $AZURITE (the azurite binary), on PATH, or in
// the user cache directory (blockreport/azurite), where it is installed
// with npm on first use. Without node and npm the tests skip, except under
// CI=true, where they fail: CI must not pass without the emulator.
package azuritetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the Azurite release installed when none is found.
const Version = "3.37.0"

// Account and Key are Azurite's well-known development account.
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Emulator is one running Azurite.
type Emulator struct {
	BlobURL  string // http://127.0.0.1:PORT/devstoreaccount1 (path-style)
	TableURL string
	cmd      *exec.Cmd
}

// ConnectionString is the emulator's full connection string (Go azblob does
// not understand UseDevelopmentStorage=true).
func (e *Emulator) ConnectionString() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + Account + ";AccountKey=" + Key +
		";BlobEndpoint=" + e.BlobURL + ";TableEndpoint=" + e.TableURL + ";"
}

var (
	findOnce sync.Once
	binPath  string
	findErr  error
)

// Binary returns the path of the azurite binary, installing it into the
// user cache directory if needed.
func Binary() (string, error) {
	findOnce.Do(func() { binPath, findErr = find() })
	return binPath, findErr
}

func find() (string, error) {
	if p := os.Getenv("AZURITE"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("azurite"); err == nil {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("azurite: no user cache directory: %w", err)
	}
	dir := filepath.Join(cache, "blockreport", "azurite")
	bin := filepath.Join(dir, "node_modules", ".bin", "azurite")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", errors.New("azurite: not installed and no npm to install it (install Node.js, or run .ci/run)")
	}
	// Install into a fresh directory, then rename it into place, so that
	// test binaries installing at once never see half an install.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "azurite-install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", tmp, "azurite@"+Version).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("azurite: npm install azurite@%s: %v\n%s", Version, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(bin); statErr != nil { // another process won the race: fine
			return "", fmt.Errorf("azurite: %w", err)
		}
	}
	return bin, nil
}

// unavailable skips the test, or fails it under CI=true.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("Azurite is required under CI=true: %v", err)
	}
	t.Skipf("Azurite unavailable (%v); set CI=true to make this a failure", err)
}

var listening = regexp.MustCompile(`Azurite (Blob|Table) service is successfully listening at (http://\S+)`)

// Start starts an emulator for the test and stops it when the test ends.
func Start(t testing.TB) *Emulator {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		unavailable(t, err)
		return nil
	}
	dir := t.TempDir() // Azurite writes its debug files to the working directory
	cmd := exec.Command(bin, "--silent", "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
		"--blobHost", "127.0.0.1", "--blobPort", "0", "--queueHost", "127.0.0.1", "--queuePort", "0",
		"--tableHost", "127.0.0.1", "--tablePort", "0")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // node children stop with it
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		unavailable(t, fmt.Errorf("start %s: %w", bin, err))
		return nil
	}
	e := &Emulator{cmd: cmd}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var seen []string
		for sc.Scan() {
			line := sc.Text()
			seen = append(seen, line)
			if m := listening.FindStringSubmatch(line); m != nil {
				if m[1] == "Blob" {
					e.BlobURL = m[2] + "/" + Account
				} else {
					e.TableURL = m[2] + "/" + Account
				}
				if e.BlobURL != "" && e.TableURL != "" {
					found <- nil
					io.Copy(io.Discard, stdout)
					return
				}
			}
		}
		found <- fmt.Errorf("azurite exited before listening:\n%s", strings.Join(seen, "\n"))
	}()
	select {
	case err := <-found:
		if err != nil {
			unavailable(t, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("azurite did not start listening within 60s")
	}
	return e
}
