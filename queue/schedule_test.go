package queue

import (
	"context"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/probe"
)

// TestScheduleOneRunPerTick: three workers with the same --schedule start
// one run per tick between them (the elected leader inserts the tick's
// job), and every run finishes.
func TestScheduleOneRunPerTick(t *testing.T) {
	url := pgtest.URL(t)
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 30, Tenants: 2, Seed: 5})
	fake, err := faketeams.Start(faketeams.Config{Population: pop, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	db := openDB(t, url)
	ctx := context.Background()
	if _, err := db.UpsertReferences(ctx, fake.References(), time.Now()); err != nil {
		t.Fatal(err)
	}
	const every = 4 * time.Second
	start := time.Now()
	startWorkers(t, url, 3, Config{
		Prober: proberFactory(t, fake, 1000), Concurrency: 8, Jobs: 2, Logger: logger(t),
		Schedule: &Schedule{Cron: "@every " + every.String(), Mode: probe.ModeTyping, Params: []byte(`{"mode":"typing"}`)},
	})
	// Wait for three ticks' runs to finish.
	deadline := time.Now().Add(time.Minute)
	for {
		runs, err := db.Runs(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		finished := 0
		for _, r := range runs {
			if r.State == blockreport.RunFinished {
				finished++
			}
		}
		if finished >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs finished after a minute of ticks every %s", finished, every)
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(start)

	var ticks, distinct int
	if err := db.SQL().QueryRow(`SELECT COUNT(*), COUNT(DISTINCT args->>'tick') FROM river_job WHERE kind = $1`,
		ScheduledRunArgs{}.Kind()).Scan(&ticks, &distinct); err != nil {
		t.Fatal(err)
	}
	runs, err := db.Runs(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d ticks, %d runs", elapsed.Round(time.Millisecond), ticks, len(runs))
	if ticks != distinct {
		t.Errorf("%d scheduled-run jobs for %d ticks: a tick was inserted twice", ticks, distinct)
	}
	if limit := int(elapsed/every) + 1; ticks > limit {
		t.Errorf("%d ticks in %s at one per %s: more than one worker scheduled them", ticks, elapsed, every)
	}
	// Each tick's job started one run (the previous one had finished); the
	// newest tick's run may still be going.
	if len(runs) < ticks-1 || len(runs) > ticks {
		t.Errorf("%d runs for %d ticks, want one per tick", len(runs), ticks)
	}
	for _, r := range runs[1:] { // all but the newest
		if r.State != blockreport.RunFinished || r.Total() != len(pop) {
			t.Errorf("run %d: %s with %d results, want finished with %d", r.ID, r.State, r.Total(), len(pop))
		}
	}
}
