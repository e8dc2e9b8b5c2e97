package blockreport

import (
	"encoding/json"
	"time"
)

// Status is the outcome of probing one conversation. It is data, never a Go
// error: a blocked user is a normal result of a run.
type Status string

// The statuses a result can have. The string values are stored in the
// database and shown in reports; do not change them.
const (
	// StatusReachable means the Bot Connector accepted the probe (2xx).
	StatusReachable Status = "reachable"
	// StatusBlocked means the user blocked the bot (403
	// ConversationBlockedByUser, or sub-code MessageWritesBlocked).
	StatusBlocked Status = "blocked"
	// StatusUninstalled means the bot is no longer in the conversation (403
	// BotNotInConversationRoster or ForbiddenOperationException).
	StatusUninstalled Status = "uninstalled"
	// StatusAdminDisabled means a tenant admin disabled the bot (403
	// BotDisabledByAdmin).
	StatusAdminDisabled Status = "admin_disabled"
	// StatusNotFound means the conversation does not exist any more (404).
	StatusNotFound Status = "not_found"
	// StatusForbidden is any other 403, including one with an empty body.
	StatusForbidden Status = "forbidden"
	// StatusThrottled means the service still answered 429 after retries.
	StatusThrottled Status = "throttled"
	// StatusFailed covers 5xx, timeouts and resets still failing after
	// retries, redirects and other 4xx answers.
	StatusFailed Status = "failed"
	// StatusInvalid means the reference was not probed because it is
	// malformed or its service URL is not allowed to receive the token.
	StatusInvalid Status = "invalid"
	// StatusOptedOut means the reference is marked opted out and was never
	// probed.
	StatusOptedOut Status = "opted_out"
)

// Statuses lists every status in report order.
var Statuses = []Status{
	StatusReachable, StatusBlocked, StatusUninstalled, StatusAdminDisabled,
	StatusNotFound, StatusForbidden, StatusThrottled, StatusFailed,
	StatusInvalid, StatusOptedOut,
}

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// Unchecked reports whether s means the conversation could not be checked
// this time (as opposed to a definite answer about reachability).
func (s Status) Unchecked() bool {
	return s == StatusForbidden || s == StatusThrottled || s == StatusFailed
}

// Label is the human-readable name of s used in reports.
func (s Status) Label() string {
	switch s {
	case StatusReachable:
		return "Reachable"
	case StatusBlocked:
		return "Blocked"
	case StatusUninstalled:
		return "Uninstalled"
	case StatusAdminDisabled:
		return "Admin disabled"
	case StatusNotFound:
		return "Not found"
	case StatusForbidden:
		return "Forbidden"
	case StatusThrottled:
		return "Throttled"
	case StatusFailed:
		return "Failed"
	case StatusInvalid:
		return "Invalid"
	case StatusOptedOut:
		return "Opted out"
	}
	return string(s)
}

// Cloud names a Microsoft cloud. It picks the login host, the Bot Connector
// scope and hosts, and the Microsoft Graph root a run uses.
type Cloud string

// The supported clouds.
const (
	CloudPublic Cloud = "public"
	CloudGCC    Cloud = "gcc"
	CloudGCCH   Cloud = "gcch"
	CloudDoD    Cloud = "dod"
)

// Clouds lists the supported clouds.
var Clouds = []Cloud{CloudPublic, CloudGCC, CloudGCCH, CloudDoD}

// Valid reports whether c is a supported cloud.
func (c Cloud) Valid() bool {
	for _, v := range Clouds {
		if c == v {
			return true
		}
	}
	return false
}

// ConversationType is the Teams scope of a conversation.
type ConversationType string

// The conversation types Teams uses in conversation.conversationType.
const (
	ConversationPersonal  ConversationType = "personal"
	ConversationGroupChat ConversationType = "groupChat"
	ConversationChannel   ConversationType = "channel"
)

// Valid reports whether t is a known conversation type.
func (t ConversationType) Valid() bool {
	return t == ConversationPersonal || t == ConversationGroupChat || t == ConversationChannel
}

// Reference is one stored conversation reference: where and to whom the bot
// can send proactive messages.
type Reference struct {
	ID               int64            `db:"id" json:"id"`
	TenantID         string           `db:"tenant_id" json:"tenantId"`
	UserID           string           `db:"user_id" json:"userId"` // Teams user id, "29:..."
	AADObjectID      string           `db:"aad_object_id" json:"aadObjectId"`
	UserName         string           `db:"user_name" json:"userName"`
	Email            string           `db:"email" json:"email"` // email or UPN when known
	ConversationID   string           `db:"conversation_id" json:"conversationId"`
	ConversationType ConversationType `db:"conversation_type" json:"conversationType"`
	TeamID           string           `db:"team_id" json:"teamId"`
	ServiceURL       string           `db:"service_url" json:"serviceUrl"`
	BotID            string           `db:"bot_id" json:"botId"`
	ChannelID        string           `db:"channel_id" json:"channelId"`
	Locale           string           `db:"locale" json:"locale"`
	OptedOut         bool             `db:"opted_out" json:"optedOut"`
	FirstSeen        time.Time        `db:"first_seen" json:"firstSeen"`
	LastSeen         time.Time        `db:"last_seen" json:"lastSeen"`
	Raw              json.RawMessage  `db:"raw" json:"raw,omitempty"`
	// Source and SourceKey say where the reference was last imported
	// from: a file or azblob://CONTAINER, aztable://TABLE, and the
	// record's key there (blob name, PartitionKey/RowKey, "line N").
	Source    string `db:"source" json:"source,omitempty"`
	SourceKey string `db:"source_key" json:"sourceKey,omitempty"`
}

// Key identifies a reference independently of its database id: one bot
// conversation with one user (or one team/group installation) in a tenant.
func (r Reference) Key() string {
	return r.TenantID + "|" + r.ConversationID + "|" + r.UserID
}

// Result is the outcome of probing one reference in one run.
type Result struct {
	RunID       int64         `db:"run_id"`
	ReferenceID int64         `db:"reference_id"`
	Status      Status        `db:"status"`
	Reason      string        `db:"reason"` // raw code, e.g. ConversationBlockedByUser
	HTTPStatus  int           `db:"http_status"`
	Detail      string        `db:"detail"` // short human-readable detail
	Attempts    int           `db:"attempts"`
	Latency     time.Duration `db:"-"` // stored as latency_ms
	ProbedAt    time.Time     `db:"probed_at"`
	// NewConversationID is set when the probe created the 1:1 conversation
	// for a reference that had none; the store saves it on the reference.
	NewConversationID string `db:"-"`
}

// RunState is the lifecycle state of a probe run.
type RunState string

// Run states.
const (
	RunRunning     RunState = "running"
	RunInterrupted RunState = "interrupted"
	RunFailed      RunState = "failed"
	RunFinished    RunState = "finished"
)

// Run is one probe run over every stored reference.
type Run struct {
	ID         int64
	StartedAt  time.Time
	FinishedAt time.Time // zero while running or when interrupted
	Mode       string
	State      RunState
	Params     json.RawMessage // probe parameters (no secrets)
	Totals     map[Status]int
}

// Total is the number of results recorded for the run.
func (r Run) Total() int {
	n := 0
	for _, c := range r.Totals {
		n += c
	}
	return n
}

// Row is one result joined with its reference and its history, as the
// reports list it.
type Row struct {
	Reference
	Result
	PreviousStatus Status    `db:"previous_status"` // "" when the reference has no result in an earlier finished run
	StatusSince    time.Time `db:"status_since"`    // start of the first run of the current streak of Status
	Graph
}

// Graph is what Microsoft Graph added to a row: its cross-check of the
// result, the directory's view of the user and the tenant's name. Every
// field is "" when Graph was off or could not say.
type Graph struct {
	Installed       Installed    `db:"graph_installed"` // "Installed (Graph)"
	GraphAnswer     string       `db:"graph_answer"`    // Graph's raw answer
	GraphOutcome    GraphOutcome `db:"graph_outcome"`
	ConnectorStatus Status       `db:"connector_status"` // the connector-only status when Graph changed it
	GraphNote       string       `db:"graph_note"`
	// OldConversationID is the stale conversation a re-link replaced.
	OldConversationID string `db:"old_conversation_id"`
	DisplayName       string `db:"dir_display_name"`
	UPN               string `db:"dir_upn"`
	Department        string `db:"dir_department"`
	JobTitle          string `db:"dir_job_title"`
	OfficeLocation    string `db:"dir_office_location"`
	Country           string `db:"dir_country"`
	// Account is "enabled", "disabled", "not in directory" or "".
	Account    string `db:"dir_account"`
	TenantName string `db:"tenant_name"`
}
