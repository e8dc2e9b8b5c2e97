package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/store"
)

// BenchmarkEngineOverhead compares, in one run against one zero-latency
// faketeams without limits, the engine probing and persisting 10,000
// references into the default SQLite store (typing mode, --concurrency 64,
// pacing out of the way) with a plain Go HTTP client posting the same
// typing activities to the same conversations, 64 at a time, with the
// same token, saving nothing. The ratio engine/raw is the engine's
// throughput as a share of the bare HTTP exchange's: the median of three
// alternating rounds (and the lowest).
func BenchmarkEngineOverhead(b *testing.B) {
	const tenants, perTenant, workers, rounds = 20, 500, 64, 3
	var pop []faketeams.Conversation
	for i := range tenants {
		pop = append(pop, faketeams.Generate(faketeams.GenerateOptions{Users: perTenant, Tenants: 1, Seed: uint64(200 + i)})...)
	}
	fake, err := faketeams.Start(faketeams.Config{Population: pop, Limits: faketeams.NoLimits()})
	if err != nil {
		b.Fatal(err)
	}
	defer fake.Close()
	refs := fake.References()
	cred, err := auth.New(auth.Config{AppID: faketeams.DefaultAppID, Secret: faketeams.DefaultAppSecret, TokenURL: fake.TokenURL("botframework.com")})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := cred.Token(context.Background(), "", faketeams.Scope)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	engineRun := func() float64 {
		db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "b.db"), log)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if _, err := db.UpsertReferences(context.Background(), refs, time.Now()); err != nil {
			b.Fatal(err)
		}
		run, err := db.CreateRun(context.Background(), string(probe.ModeTyping), nil, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		p, err := probe.New(probe.Config{AppID: faketeams.DefaultAppID, Credential: cred, AllowHosts: []string{"127.0.0.1"},
			GCCServiceURL: fake.ServiceURL("gcc"), Rate: 1e6, Concurrency: workers})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := p.Run(context.Background(), db, run.ID); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start).Seconds()
		if got := p.Progress().Done; got != len(refs) {
			b.Fatalf("engine saved %d results of %d", got, len(refs))
		}
		return float64(len(refs)) / el
	}
	for b.Loop() {
		// Rounds alternate so that the shared machine's load weighs on both.
		var raws, engines, ratios []float64
		for range rounds {
			raw := rawPost(b, refs, tok, workers)
			engine := engineRun()
			raws, engines, ratios = append(raws, raw), append(engines, engine), append(ratios, engine/raw)
		}
		b.ReportMetric(median(raws), "raw-req/s")
		b.ReportMetric(median(engines), "engine-refs/s")
		b.ReportMetric(median(ratios), "engine/raw")
		b.ReportMetric(slices.Min(ratios), "engine/raw-min")
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// rawPost posts a typing activity, as the probe builds it, to every
// reference's conversation with workers goroutines; it returns requests/s.
func rawPost(b *testing.B, refs []blockreport.Reference, tok string, workers int) float64 {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * workers, MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(refs) {
					return
				}
				ref := refs[i]
				body, _ := json.Marshal(map[string]any{
					"type": "typing", "channelId": "msteams",
					"from": map[string]any{"id": ref.BotID}, "recipient": map[string]any{"id": ref.UserID},
					"conversation": map[string]any{"id": ref.ConversationID, "tenantId": ref.TenantID, "conversationType": string(ref.ConversationType)},
					"locale":       ref.Locale,
				})
				u := strings.TrimSuffix(ref.ServiceURL, "/") + "/v3/conversations/" + url.PathEscape(ref.ConversationID) + "/activities"
				req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json; charset=utf-8")
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				var sink bytes.Buffer
				_, _ = sink.ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 && resp.StatusCode != 403 && resp.StatusCode != 404 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	if n := failed.Load(); n > 0 {
		b.Fatal(fmt.Sprintf("raw client: %d requests failed", n))
	}
	return float64(len(refs)) / el
}
