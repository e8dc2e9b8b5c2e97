package report

import (
	"fmt"
	"sort"

	blockreport "github.com/blockreport/blockreport"
)

// TypingIncident is a tenant whose typing probes Teams answered 502 often
// enough to be an incident of Teams' typing service rather than anything
// about its users: bot developers reported in 2024 that Teams throttles or
// switches typing indicators off during load and outages, answering 502
// (BotFramework-Services#194, bot-docs#1620).
type TypingIncident struct {
	TenantID string
	Failed   int // failed results whose last answer was a 502
	Probed   int // results of the tenant that were sent something
}

// Share is Failed of Probed.
func (t TypingIncident) Share() float64 { return float64(t.Failed) / float64(max(t.Probed, 1)) }

// Note says what the incident means and what to do.
func (t TypingIncident) Note() string {
	return fmt.Sprintf("Tenant %s: Teams answered 502 to %s of %s typing probes (%s). Teams throttles or switches off typing indicators during incidents, so these users could not be checked; that says nothing about them. Rerun later (blockreport run --retry-unchecked), or probe with --mode message or members.",
		t.TenantID, num(t.Failed), num(t.Probed), spacePct(t.Share()))
}

// Thresholds of a typing incident: at least this many 502s, and this share
// of the tenant's probes.
const (
	incidentMinFailed = 3
	incidentMinShare  = 0.05
)

// incidents counts 502s per tenant while a typing run's rows stream by.
type incidents struct {
	typing  bool
	tenants map[string]*TypingIncident
}

func newIncidents(mode string) *incidents {
	return &incidents{typing: mode == "typing", tenants: map[string]*TypingIncident{}}
}

func (in *incidents) add(row blockreport.Row) {
	if !in.typing || row.Status == blockreport.StatusInvalid || row.Status == blockreport.StatusOptedOut {
		return
	}
	t := in.tenants[row.TenantID]
	if t == nil {
		t = &TypingIncident{TenantID: row.TenantID}
		in.tenants[row.TenantID] = t
	}
	t.Probed++
	if row.Status == blockreport.StatusFailed && row.HTTPStatus == 502 {
		t.Failed++
	}
}

// result is the tenants over the thresholds, by tenant id.
func (in *incidents) result() []TypingIncident {
	var out []TypingIncident
	for _, t := range in.tenants {
		if t.Failed >= incidentMinFailed && t.Share() >= incidentMinShare {
			out = append(out, *t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TenantID < out[j].TenantID })
	return out
}

// TypingIncidentNotes are the notes of the run's typing incidents, none
// for a run without any.
func (r *Report) TypingIncidentNotes() []string {
	var out []string
	for _, t := range r.TypingIncidents {
		out = append(out, t.Note())
	}
	return out
}
