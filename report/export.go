package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// ExportFormat is a format of the row export (blockreport export).
type ExportFormat string

// The export formats.
const (
	ExportCSV   ExportFormat = "csv"
	ExportJSONL ExportFormat = "jsonl"
)

// ExportColumns is the header of a CSV export: every list-sheet column
// (Columns), in the same order, then the reference's database id and the
// raw conversation type, which a cleanup script needs.
var ExportColumns = append(append([]string(nil), Columns...), "Reference ID", "Conversation type")

// ExportRow is one exported row as JSON Lines write it; the keys follow
// the conversation reference's own JSON names.
type ExportRow struct {
	Status           blockreport.Status `json:"status"`
	Reason           string             `json:"reason"`
	UserName         string             `json:"userName"`
	Email            string             `json:"email"`
	AADObjectID      string             `json:"aadObjectId"`
	UserID           string             `json:"userId"`
	TenantID         string             `json:"tenantId"`
	Scope            string             `json:"scope"`
	ConversationID   string             `json:"conversationId"`
	HTTPStatus       int                `json:"httpStatus,omitempty"`
	ProbedAt         *time.Time         `json:"probedAt,omitempty"`
	StatusSince      *time.Time         `json:"statusSince,omitempty"`
	PreviousStatus   blockreport.Status `json:"previousStatus,omitempty"`
	Detail           string             `json:"detail,omitempty"`
	TeamID           string             `json:"teamId,omitempty"`
	ServiceURL       string             `json:"serviceUrl"`
	TenantName       string             `json:"tenantName,omitempty"`
	Department       string             `json:"department,omitempty"`
	JobTitle         string             `json:"jobTitle,omitempty"`
	UPN              string             `json:"userPrincipalName,omitempty"`
	Account          string             `json:"account,omitempty"`
	Installed        string             `json:"installedGraph,omitempty"`
	GraphAnswer      string             `json:"graphAnswer,omitempty"`
	Source           string             `json:"source,omitempty"` // where the reference was last imported from
	ReferenceID      int64              `json:"referenceId"`
	ConversationType string             `json:"conversationType"`
	RunID            int64              `json:"runId"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// NewExportRow is the export of one row.
func NewExportRow(r blockreport.Row) ExportRow {
	return ExportRow{
		Status: r.Status, Reason: Reason(r), UserName: r.UserName, Email: r.Email,
		AADObjectID: r.AADObjectID, UserID: r.UserID, TenantID: r.TenantID,
		Scope: string(scopeOf(r.ConversationType)), ConversationID: r.ConversationID,
		HTTPStatus: r.HTTPStatus, ProbedAt: timePtr(r.ProbedAt), StatusSince: timePtr(r.StatusSince),
		PreviousStatus: r.PreviousStatus, Detail: r.Detail, TeamID: r.TeamID, ServiceURL: r.ServiceURL,
		TenantName: r.TenantName, Department: r.Department, JobTitle: r.JobTitle, UPN: r.UPN, Account: r.Account,
		Installed: installedLabel(r), GraphAnswer: graphAnswer(r), Source: SourceOf(r.Reference),
		ReferenceID: r.Reference.ID, ConversationType: string(r.ConversationType), RunID: r.RunID,
	}
}

// Exporter writes rows one at a time in one export format; Close flushes
// what is buffered and reports the first write error.
type Exporter struct {
	format ExportFormat
	csv    *csv.Writer
	json   *json.Encoder
	rows   int
	err    error
}

// NewExporter starts an export to w (a CSV export writes its header now).
func NewExporter(w io.Writer, format ExportFormat) (*Exporter, error) {
	e := &Exporter{format: format}
	switch format {
	case ExportCSV:
		e.csv = csv.NewWriter(w)
		e.err = e.csv.Write(ExportColumns)
	case ExportJSONL:
		e.json = json.NewEncoder(w)
		e.json.SetEscapeHTML(false)
	default:
		return nil, fmt.Errorf("export format %q: want csv or jsonl", format)
	}
	return e, e.err
}

// Rows is the number of rows written.
func (e *Exporter) Rows() int { return e.rows }

// Write adds one row.
func (e *Exporter) Write(r blockreport.Row) error {
	if e.err != nil {
		return e.err
	}
	x := NewExportRow(r)
	if e.csv != nil {
		e.err = e.csv.Write(csvRecord(x))
	} else {
		e.err = e.json.Encode(x)
	}
	if e.err == nil {
		e.rows++
	}
	return e.err
}

// Close flushes the export.
func (e *Exporter) Close() error {
	if e.csv != nil {
		e.csv.Flush()
		if e.err == nil {
			e.err = e.csv.Error()
		}
	}
	return e.err
}

// csvRecord is one CSV line in ExportColumns order. Times are RFC 3339 UTC.
// Text that a spreadsheet would take for a formula (starting with = + - @,
// tab or carriage return) gets a leading apostrophe, as OWASP recommends,
// because CSV files are opened in Excel; the JSON Lines export keeps every
// value exactly as stored.
func csvRecord(x ExportRow) []string {
	ts := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.Format(time.RFC3339)
	}
	code := ""
	if x.HTTPStatus != 0 {
		code = strconv.Itoa(x.HTTPStatus)
	}
	prev := ""
	if x.PreviousStatus != "" {
		prev = x.PreviousStatus.Label()
	}
	rec := []string{
		x.Status.Label(), x.Reason, x.UserName, x.Email, x.AADObjectID, x.UserID,
		x.TenantID, x.Scope, x.ConversationID, code, ts(x.ProbedAt),
		ts(x.StatusSince), prev, x.Detail, x.TeamID, x.ServiceURL,
		x.TenantName, x.Department, x.JobTitle, x.UPN, x.Account, x.Installed, x.GraphAnswer, x.Source,
		strconv.FormatInt(x.ReferenceID, 10), x.ConversationType,
	}
	for i, s := range rec {
		rec[i] = csvSafe(clean(s))
	}
	return rec
}

func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// Reason is the reason a report shows for a row: the service's error
// code; for a reachable answer, whose stored reason is only its HTTP status
// (in a column of its own), "Recovered (was blocked)" after a definite
// "cannot reach", else "Reachable".
func Reason(r blockreport.Row) string {
	if r.Status != blockreport.StatusReachable || (r.Reason != "" && !isHTTPReason(r.Reason)) {
		return r.Reason
	}
	if definite(r.PreviousStatus) {
		return "Recovered (was " + strings.ToLower(r.PreviousStatus.Label()) + ")"
	}
	return "Reachable"
}

// isHTTPReason reports whether a stored reason is only an HTTP status
// ("HTTP 201"), which is what the probe records for a 2xx answer.
func isHTTPReason(s string) bool {
	rest, ok := strings.CutPrefix(s, "HTTP ")
	if !ok || len(rest) != 3 {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}
