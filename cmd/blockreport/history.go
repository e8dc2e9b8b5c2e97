package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/report"
	"github.com/blockreport/blockreport/store"
)

type historyConfig struct {
	common commonConfig
	JSON   bool
}

const historySynopsis = "history [--db URL] [--json] USER   (USER: email or UPN, AAD object id, 29: Teams user id, or conversation id)"

// historyEntry is one line of "history --json".
type historyEntry struct {
	Run            int64                `json:"run"`
	StartedAt      time.Time            `json:"startedAt"`
	RunState       blockreport.RunState `json:"runState"`
	Status         blockreport.Status   `json:"status"`
	Reason         string               `json:"reason"`
	HTTPStatus     int                  `json:"httpStatus,omitempty"`
	PreviousStatus blockreport.Status   `json:"previousStatus,omitempty"`
	ProbedAt       *time.Time           `json:"probedAt,omitempty"`
	ConversationID string               `json:"conversationId"`
	Scope          string               `json:"conversationType"`
	TenantID       string               `json:"tenantId"`
	UserID         string               `json:"userId"`
	AADObjectID    string               `json:"aadObjectId"`
	UserName       string               `json:"userName"`
	Email          string               `json:"email"`
	ReferenceID    int64                `json:"referenceId"`
	Source         string               `json:"source,omitempty"` // where the reference was last imported from, e.g. "refs.jsonl line 1"
}

// runHistory prints one user's status in every run, oldest first.
func runHistory(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg historyConfig
	fs := newFlagSet("history", historySynopsis, getenv, stderr)
	fs.common(&cfg.common)
	fs.boolVar(&cfg.JSON, "json", false, "print a JSON array (run, startedAt, status, reason, conversationId, ...)", "BLOCKREPORT_HISTORY_JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	// Flags may come after USER too: "history ann@example.com --json".
	rest := fs.Args()
	if len(rest) > 1 {
		if err := fs.parse(rest[1:]); err != nil {
			return err
		}
		rest = append(rest[:1], fs.Args()...)
	}
	switch {
	case len(rest) == 0 || strings.TrimSpace(rest[0]) == "":
		return usageErrorf("history: give USER: an email or UPN, an AAD object id, a 29: Teams user id or a conversation id")
	case len(rest) > 1:
		return usageErrorf("history: unexpected argument %q (one USER at a time)", rest[1])
	}
	user := rest[0]
	db, err := cfg.common.openExisting(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	entries, err := db.History(ctx, user)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return fmt.Errorf("history: no conversation matches %q in any run (looked for it as email or UPN, AAD object id, 29: Teams user id and conversation id)", user)
	}
	if cfg.JSON {
		out := make([]historyEntry, len(entries))
		for i, e := range entries {
			out[i] = historyJSON(e)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return printHistory(stdout, user, entries)
}

func historyJSON(e store.HistoryEntry) historyEntry {
	h := historyEntry{
		Run: e.RunID, StartedAt: e.RunStartedAt.UTC(), RunState: e.RunState, Status: e.Status, Reason: report.Reason(e.Row),
		HTTPStatus: e.HTTPStatus, PreviousStatus: e.PreviousStatus, ConversationID: e.ConversationID,
		Scope: string(e.ConversationType), TenantID: e.TenantID, UserID: e.UserID, AADObjectID: e.AADObjectID,
		UserName: e.UserName, Email: e.Email, ReferenceID: e.Reference.ID,
		Source: report.SourceOf(e.Reference),
	}
	if !e.ProbedAt.IsZero() {
		t := e.ProbedAt.UTC()
		h.ProbedAt = &t
	}
	return h
}

// printHistory writes a table: one line per run and conversation.
func printHistory(w io.Writer, user string, entries []store.HistoryEntry) error {
	convs := map[int64]bool{}
	runs := map[int64]bool{}
	for _, e := range entries {
		convs[e.Reference.ID], runs[e.RunID] = true, true
	}
	first := entries[0]
	name := first.UserName
	if first.Email != "" {
		name += " <" + first.Email + ">"
	}
	fmt.Fprintf(w, "History of %s: %s, %d conversation(s), %d run(s), oldest first\n\n", user, strings.TrimSpace(name), len(convs), len(runs))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED (UTC)\tSTATE\tSTATUS\tREASON\tCONVERSATION")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.RunID, e.RunStartedAt.UTC().Format("2006-01-02 15:04"), e.RunState,
			e.Status.Label(), cell(report.Reason(e.Row)), cell(e.ConversationID))
	}
	return tw.Flush()
}

// cell keeps stored text from breaking the table: control characters
// become spaces.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
