package graph

import (
	blockreport "github.com/blockreport/blockreport"
)

// Connector codes the verdicts depend on (see probe/classify.go).
const (
	codeBlockedByUser     = "ConversationBlockedByUser"
	codeBotDisabledByUser = "BotDisabledByUser"
)

// Decision is what Decide makes of a result and Graph's answer.
type Decision struct {
	Check blockreport.GraphCheck
	// NeedChat: the app is installed but the stored conversation answered
	// as gone; the installation's chat should replace it (Relink).
	NeedChat bool
}

// Decide cross-checks one connector result (row) with the installation
// Graph reported for its user:
//
//   - 403 MessageWritesBlocked, or a 403 without a known code: installed →
//     blocked; not installed → uninstalled;
//   - ConversationBlockedByUser (or BotDisabledByUser) → blocked whatever
//     Graph says, noting "also not installed";
//   - BotNotInConversationRoster / ForbiddenOperationException
//     (uninstalled) or 404 ConversationNotFound (not_found): not installed
//     confirms it; installed means the stored conversation is stale
//     (NeedChat: re-link it to the installation's chat and probe again);
//   - 2xx and not installed: stays reachable, the disagreement noted;
//   - BotDisabledByAdmin → admin_disabled whatever Graph says;
//   - no definite installation answer: the connector's verdict stands.
func Decide(row blockreport.Row, in Installation) Decision {
	res := row.Result
	c := blockreport.GraphCheck{
		RunID: res.RunID, ReferenceID: row.Reference.ID, Installed: in.Installed, Answer: in.Raw(),
		Outcome: blockreport.GraphConfirmed, Result: res,
	}
	if in.Installed != InstalledYes && in.Installed != InstalledNo {
		c.Installed, c.Outcome = InstalledUnknown, blockreport.GraphUnknown
		if in.Status == 404 {
			c.Note = "Teams does not know the user (Graph 404)"
		}
		return Decision{Check: c}
	}
	installed := in.Installed == InstalledYes
	change := func(to blockreport.Status, note string) {
		c.Outcome, c.ConnectorStatus, c.Note = blockreport.GraphChanged, res.Status, note
		c.Result.Status = to
		c.Result.Detail = appendDetail(res.Detail, note)
	}
	note := func(n string) {
		c.Outcome, c.Note = blockreport.GraphNoted, n
		c.Result.Detail = appendDetail(res.Detail, n)
	}
	switch res.Status {
	case blockreport.StatusReachable:
		if !installed {
			note("Graph: app not installed for this user, yet the connector accepted the probe")
		}
	case blockreport.StatusBlocked:
		explicit := res.Reason == codeBlockedByUser || res.Reason == codeBotDisabledByUser
		switch {
		case explicit && !installed:
			note("blocked; Graph: also not installed")
		case !explicit && !installed:
			change(blockreport.StatusUninstalled, "Graph: app not installed, so MessageWritesBlocked means uninstalled, not blocked")
		}
	case blockreport.StatusForbidden:
		// Only a 403 without any code: NotEnoughPermissions, InvalidBotApiHost
		// and the like say something else than blocked or uninstalled.
		if res.HTTPStatus == 403 && (res.Reason == "" || res.Reason == "HTTP 403") {
			if installed {
				change(blockreport.StatusBlocked, "Graph: app installed, so a 403 without a known code means blocked")
			} else {
				change(blockreport.StatusUninstalled, "Graph: app not installed, so the 403 means uninstalled")
			}
		}
	case blockreport.StatusUninstalled, blockreport.StatusNotFound:
		if installed {
			c.Outcome, c.ConnectorStatus = blockreport.GraphRelinked, res.Status
			c.OldConversationID = row.ConversationID
			c.Note = "Graph: app installed, stored conversation stale (" + res.Reason + ")"
			return Decision{Check: c, NeedChat: in.ID != ""}
		}
	case blockreport.StatusAdminDisabled:
		// The tenant admin's policy decides, whatever Graph says.
	default:
		// Throttled, failed, invalid, opted out: nothing Graph can settle.
		c.Outcome = blockreport.GraphUnknown
		c.Installed = in.Installed
	}
	return Decision{Check: c}
}

func appendDetail(detail, note string) string {
	if detail == "" {
		return note
	}
	return detail + " | " + note
}
