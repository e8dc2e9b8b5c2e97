package blockreport

import "time"

// Installed is what Microsoft Graph says about the bot's Teams app for a
// user: the "Installed (Graph)" column.
type Installed string

// The installation states.
const (
	InstalledYes     Installed = "yes"
	InstalledNo      Installed = "no"
	InstalledUnknown Installed = "unknown"
)

// GraphOutcome is what Graph's cross-check did to a result.
type GraphOutcome string

// The outcomes of a cross-check.
const (
	// GraphConfirmed: Graph agrees with the connector's verdict.
	GraphConfirmed GraphOutcome = "confirmed"
	// GraphChanged: Graph changed the verdict (MessageWritesBlocked or a
	// code-less 403 and not installed: uninstalled, not blocked).
	GraphChanged GraphOutcome = "changed"
	// GraphRelinked: the app is installed but the stored conversation is
	// stale; the reference now points at the installation's chat, probed
	// again in the same run.
	GraphRelinked GraphOutcome = "relinked"
	// GraphNoted: Graph disagrees but the connector's verdict stands (a
	// 2xx while not installed; blocked and also not installed); see Note.
	GraphNoted GraphOutcome = "noted"
	// GraphUnknown: no definite installation answer (Graph unavailable for
	// the tenant, or the user unknown to Teams).
	GraphUnknown GraphOutcome = "unknown"
)

// GraphCheck is the cross-check of one result: Graph's raw answer and what
// it did to the verdict.
type GraphCheck struct {
	RunID       int64
	ReferenceID int64
	Installed   Installed
	Answer      string // Graph's raw answer, e.g. "HTTP 200 installed"
	Outcome     GraphOutcome
	// ConnectorStatus is the status the connector's answer alone meant,
	// set when Outcome is GraphChanged or GraphRelinked.
	ConnectorStatus Status
	Note            string
	// Result is the result as revised (Outcome GraphChanged), whose
	// Status is the verdict.
	Result Result
	// ChatID is, for GraphRelinked, the installation's chat id the
	// reference is re-linked to; OldConversationID the stale one.
	ChatID            string
	OldConversationID string
	CheckedAt         time.Time
}

// DirectoryUser is the directory's view of one user.
type DirectoryUser struct {
	TenantID       string
	AADObjectID    string
	InDirectory    bool // false: the directory does not know the user (someone who left)
	DisplayName    string
	UPN            string
	Mail           string
	Department     string
	JobTitle       string
	OfficeLocation string
	Country        string
	AccountEnabled bool
	UserType       string
}

// Account is the user's account state as the reports show it: "enabled",
// "disabled", "not in directory", or "" when the directory was not asked.
func (u DirectoryUser) Account() string {
	switch {
	case !u.InDirectory:
		return "not in directory"
	case !u.AccountEnabled:
		return "disabled"
	}
	return "enabled"
}

// TenantGraph is Graph's state for one tenant in one run.
type TenantGraph struct {
	TenantID string
	Name     string // organization display name ("" if unknown)
	// Available is false when Graph could not be used for the tenant
	// (Reason says why: no service principal, not consented, failing).
	Available bool
	Reason    string
	// EnabledUsers is the number of enabled directory users (coverage),
	// -1 when coverage did not run for the tenant.
	EnabledUsers int
}

// CoverageUser is an enabled directory user the bot has no reference for.
type CoverageUser struct {
	TenantID    string
	AADObjectID string
	Installed   bool
	// ReferenceID is the reference created for an installed user (0 for
	// one who never installed the app).
	ReferenceID int64
}
