package report

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// memSource is an in-memory Source: test data for the report, with fixed
// times so that outputs are deterministic.
type memSource struct {
	runs    []blockreport.Run // any order
	rows    map[int64][]blockreport.Row
	pending map[int64]int // CountPending per run
	rowsErr error
	// calls counts Rows passes, to prove Build reads the rows once.
	calls int
}

var errNoRun = errors.New("no such run")

func (m *memSource) Run(_ context.Context, id int64) (blockreport.Run, error) {
	for _, r := range m.runs {
		if r.ID == id {
			return r, nil
		}
	}
	return blockreport.Run{}, fmt.Errorf("run %d: %w", id, errNoRun)
}

func (m *memSource) Runs(_ context.Context, upTo int64, limit int) ([]blockreport.Run, error) {
	var out []blockreport.Run
	for _, r := range m.runs {
		if upTo <= 0 || r.ID <= upTo {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memSource) CountPending(_ context.Context, runID int64) (int, error) {
	return m.pending[runID], nil
}

func (m *memSource) Rows(ctx context.Context, runID int64, fn func(blockreport.Row) error) error {
	m.calls++
	if m.rowsErr != nil {
		return m.rowsErr
	}
	for _, r := range m.rows[runID] {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

var (
	t0 = time.Date(2026, 9, 1, 6, 0, 0, 0, time.UTC)
	t1 = time.Date(2026, 10, 1, 6, 0, 0, 0, time.UTC)
	t2 = time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC)
)

// Hostile strings that must stay data in every output.
const (
	hostileScript  = `<script>alert(1)</script>`
	hostileFormula = `=HYPERLINK("http://x","y")`
	hostilePlus    = `+1-555`
	hostileAt      = `@SUM(A1)`
	hostileMinus   = `-2+3`
	hostileRTL     = "Ann\u202Egnp.exe"
	hostileEmoji   = "Zoë 🚀👩‍💻"
)

func row(id int64, tenant, name string, ct blockreport.ConversationType, st, prev blockreport.Status, since time.Time) blockreport.Row {
	r := blockreport.Row{
		Reference: blockreport.Reference{
			ID:               id,
			TenantID:         tenant,
			UserID:           fmt.Sprintf("29:user-%03d", id),
			AADObjectID:      fmt.Sprintf("aad-%08d-0000-4000-8000-000000000000", id),
			UserName:         name,
			Email:            fmt.Sprintf("user%03d@example.com", id),
			ConversationID:   fmt.Sprintf("a:conv-%03d", id),
			ConversationType: ct,
			ServiceURL:       "https://smba.trafficmanager.net/amer/",
		},
		Result: blockreport.Result{
			RunID:       3,
			ReferenceID: id,
			Status:      st,
			Attempts:    1,
			ProbedAt:    t2.Add(time.Duration(id) * time.Second),
		},
		PreviousStatus: prev,
		StatusSince:    since,
	}
	switch st {
	case blockreport.StatusReachable:
		r.HTTPStatus = 200
	case blockreport.StatusBlocked:
		r.HTTPStatus, r.Reason = 403, "ConversationBlockedByUser"
	case blockreport.StatusUninstalled:
		r.HTTPStatus, r.Reason = 403, "BotNotInConversationRoster"
	case blockreport.StatusAdminDisabled:
		r.HTTPStatus, r.Reason = 403, "BotDisabledByAdmin"
	case blockreport.StatusNotFound:
		r.HTTPStatus, r.Reason = 404, "ConversationNotFound"
	case blockreport.StatusThrottled:
		r.HTTPStatus, r.Reason = 429, "Throttled"
	case blockreport.StatusFailed:
		r.HTTPStatus, r.Reason, r.Detail = 503, "ServiceUnavailable", "503 after 4 attempts"
	case blockreport.StatusInvalid:
		r.Reason, r.Detail = "InvalidServiceURL", "service URL host not allowed"
	}
	if ct == blockreport.ConversationChannel {
		r.TeamID = fmt.Sprintf("19:team-%03d@thread.tacv2", id)
	}
	return r
}

// fixture is three runs of a small population with every status, every
// kind of change, and hostile names.
func fixture() *memSource {
	const ta, tb = "tenant-aaaa", "tenant-bbbb"
	P, C, G := blockreport.ConversationPersonal, blockreport.ConversationChannel, blockreport.ConversationGroupChat
	S := func(s blockreport.Status) blockreport.Status { return s }
	rows := []blockreport.Row{
		row(1, ta, "Alice Adams", P, S("reachable"), S("reachable"), t0),
		row(2, ta, hostileScript, P, S("blocked"), S("reachable"), t2),
		row(3, ta, hostileFormula, P, S("blocked"), S("blocked"), t1),
		row(4, ta, hostilePlus, P, S("uninstalled"), S("reachable"), t2),
		row(5, ta, hostileAt, P, S("admin_disabled"), S("failed"), t2),
		row(6, ta, hostileMinus, G, S("not_found"), S("reachable"), t2),
		row(7, ta, hostileRTL, P, S("reachable"), S("blocked"), t2),
		row(8, tb, hostileEmoji, C, S("reachable"), S("uninstalled"), t2),
		row(9, tb, "Bob \x00Bell\x07", P, S("throttled"), S("reachable"), t2),
		row(10, tb, "Carol Chen", P, S("failed"), "", t2),
		row(11, tb, "Dan Diaz", P, S("invalid"), S("invalid"), t0),
		row(12, tb, "Eve Evans", P, S("opted_out"), S("opted_out"), t0),
		row(13, tb, "Finn Fox", P, S("forbidden"), S("reachable"), t2),
		row(14, tb, "Gus Grant", C, S("reachable"), S("reachable"), t0),
	}
	return &memSource{
		runs: []blockreport.Run{
			{ID: 1, StartedAt: t0, FinishedAt: t0.Add(20 * time.Minute), Mode: "typing", State: blockreport.RunFinished,
				Totals: map[blockreport.Status]int{"reachable": 12, "blocked": 0, "invalid": 1, "opted_out": 1}},
			{ID: 2, StartedAt: t1, FinishedAt: t1.Add(25 * time.Minute), Mode: "typing", State: blockreport.RunFinished,
				Totals: map[blockreport.Status]int{"reachable": 7, "blocked": 2, "uninstalled": 1, "failed": 1, "invalid": 1, "opted_out": 1}},
			{ID: 3, StartedAt: t2, FinishedAt: t2.Add(30 * time.Minute), Mode: "typing", State: blockreport.RunFinished},
		},
		rows: map[int64][]blockreport.Row{3: rows},
	}
}

// idStrings are every personal string of the fixture that a redacted
// report must not contain.
func idStrings(src *memSource) []string {
	var out []string
	for _, rows := range src.rows {
		for _, r := range rows {
			out = append(out, r.UserName, r.Email, r.UserID, r.AADObjectID, r.ConversationID)
			if r.TeamID != "" {
				out = append(out, r.TeamID)
			}
		}
	}
	return out
}
