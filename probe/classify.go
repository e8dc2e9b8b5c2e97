package probe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	blockreport "github.com/blockreport/blockreport"
)

// Error codes the classifier recognises. Sources: msteams-docs
// "Status codes from bot conversational APIs" (build-conversational-capability.md)
// and send-proactive-messages.md for MessageWritesBlocked; see
// shared/docs/teams-api.md §2.
const (
	codeBlockedByUser        = "ConversationBlockedByUser"
	codeMessageWritesBlocked = "MessageWritesBlocked"
	codeNotInRoster          = "BotNotInConversationRoster"
	codeForbiddenOperation   = "ForbiddenOperationException"
	codeDisabledByAdmin      = "BotDisabledByAdmin"
	codeConversationNotFound = "ConversationNotFound"
	codeMemberNotFound       = "MemberNotFoundInConversation"
	codeInvalidBotAPIHost    = "InvalidBotApiHost"
	// Seen in the field since the first build (teams-api.md §7): the user
	// disabled the bot (a block), and named 403s that stay forbidden.
	codeDisabledByUser       = "BotDisabledByUser"
	codeNotEnoughPermissions = "NotEnoughPermissions"
	codeTenantNoPermission   = "TenantNoPermission"
	codeCapabilityOverride   = "CapabilityOverride"
	// CodeMessageSizeTooBig is the 413 of a message over Teams' size
	// limit: never retried.
	CodeMessageSizeTooBig = "MessageSizeTooBig"
)

// knownCodes maps each recognised code to the status a 403 (or 404 for the
// not-found codes) with that code means. Order matters only for the raw-body
// fallback, where the first code found wins.
var knownCodes = []struct {
	code   string
	status blockreport.Status
	http   int
}{
	{codeBlockedByUser, blockreport.StatusBlocked, 403},
	{codeMessageWritesBlocked, blockreport.StatusBlocked, 403},
	{codeNotInRoster, blockreport.StatusUninstalled, 403},
	{codeForbiddenOperation, blockreport.StatusUninstalled, 403},
	{codeDisabledByAdmin, blockreport.StatusAdminDisabled, 403},
	{codeConversationNotFound, blockreport.StatusNotFound, 404},
	{codeMemberNotFound, blockreport.StatusNotFound, 404},
	{codeInvalidBotAPIHost, blockreport.StatusForbidden, 403},
	{codeDisabledByUser, blockreport.StatusBlocked, 403},
	{codeNotEnoughPermissions, blockreport.StatusForbidden, 403},
	{codeTenantNoPermission, blockreport.StatusForbidden, 403},
	{codeCapabilityOverride, blockreport.StatusForbidden, 403},
	{CodeMessageSizeTooBig, blockreport.StatusFailed, 413},
}

// knownTexts are the documented messages of the codes above, for bodies that
// carry only the text: field reports show "403 User blocked the conversation
// with the bot." and the Teams client's standardizedError shape carries only
// "The tenant admin disabled this bot" (teams-api.md §1, §2 shape 3).
var knownTexts = []struct{ text, code string }{
	{"user blocked the conversation with the bot", codeBlockedByUser},
	{"thread is blocked from message writes", codeMessageWritesBlocked},
	{"tenant admin disabled this bot", codeDisabledByAdmin},
	{"part of the conversation roster", codeNotInRoster},
	{"bot isn't installed in user's personal scope", codeForbiddenOperation},
}

const (
	maxDetail = 200 // runes of detail kept on a result
	maxReason = 80  // runes of reason kept on a result
)

// Classify maps the HTTP status and body of a Bot Connector answer to a
// status, the raw error code as the reason ("HTTP 503" when the body has no
// code) and a short human-readable detail taken from the body only (never
// from headers), truncated and with anything that looks like a token removed.
//
// It understands every body shape of teams-api.md §2: the standard envelope
// {"error":{"code","message"}}, the Teams shape {"errorCode":209,"message":
// "<JSON with subCode>"}, the client's standardizedError shape, empty bodies,
// and non-JSON bodies (HTML error pages, plain text) containing a code.
func Classify(httpStatus int, body []byte) (status blockreport.Status, reason, detail string) {
	if httpStatus >= 200 && httpStatus < 300 {
		return blockreport.StatusReachable, "HTTP " + strconv.Itoa(httpStatus), "" // the body is never read
	}
	code, detail := extract(body)
	reason = sanitize(code, maxReason)
	if reason == "" {
		reason = fmt.Sprintf("HTTP %d", httpStatus)
	}
	detail = sanitize(detail, maxDetail)

	switch {
	case httpStatus >= 200 && httpStatus < 300:
		return blockreport.StatusReachable, fmt.Sprintf("HTTP %d", httpStatus), ""
	case httpStatus == 403:
		for _, k := range knownCodes {
			if k.http == 403 && k.code == code {
				return k.status, reason, detail
			}
		}
		return blockreport.StatusForbidden, reason, detail
	case httpStatus == 404:
		if code == codeConversationNotFound || code == codeMemberNotFound {
			return blockreport.StatusNotFound, reason, detail
		}
		return blockreport.StatusFailed, reason, detail
	case httpStatus == 429:
		return blockreport.StatusThrottled, reason, detail
	}
	// 1xx, 3xx (redirects are never followed), other 4xx and 5xx.
	return blockreport.StatusFailed, reason, detail
}

// extract finds the most specific error code in body and a detail text.
func extract(body []byte) (code, detail string) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return "", ""
	}
	var candidates []string // most specific first
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) == nil && obj != nil {
		// Standard envelope: {"error":{"code":"...","message":"..."}}.
		if env := object(obj["error"]); env != nil {
			msg := str(env["message"])
			if sub, det := nested(msg); sub != "" {
				candidates = append(candidates, sub)
				detail = det
			}
			candidates = append(candidates, str(env["code"]))
			if detail == "" {
				detail = msg
			}
		}
		// Teams shape: {"errorCode":209,"message":"{\"subCode\":...}"}; the
		// message is itself JSON, with \r\n or \n inside, so decode it.
		if _, ok := obj["errorCode"]; ok || obj["message"] != nil || obj["subCode"] != nil {
			candidates = append(candidates, str(obj["subCode"]))
			msg := str(obj["message"])
			if m := object(obj["message"]); m != nil { // message as a JSON object
				candidates = append(candidates, str(m["subCode"]))
				if detail == "" {
					detail = firstNonEmpty(str(m["details"]), str(m["message"]))
				}
			} else if sub, det := nested(msg); sub != "" || det != "" {
				candidates = append(candidates, sub)
				if detail == "" {
					detail = det
				}
			} else if detail == "" {
				detail = msg
			}
		}
		// Teams client shape: {"errorCode":0,"standardizedError":{...}}.
		if se := object(obj["standardizedError"]); se != nil {
			if detail == "" {
				detail = str(se["errorDescription"])
			}
			sub := str(se["errorSubCode"])
			c := str(se["errorCode"])
			if c != "" && sub != "" {
				c += "/" + sub
			}
			candidates = append(candidates, c)
		}
		if _, ok := obj["errorCode"]; ok {
			if c := str(obj["errorCode"]); c != "0" {
				candidates = append(candidates, c)
			}
		}
		if detail == "" {
			detail = str(obj["details"])
		}
	} else {
		detail = plainText(body)
	}

	// A recognised code anywhere in the candidates wins over an unknown one.
	for _, c := range candidates {
		if isKnown(c) {
			return c, detail
		}
	}
	// Fallbacks for bodies we could not read structurally: a known code as a
	// substring of the raw body, then a known documented message text.
	for _, k := range knownCodes {
		if bytes.Contains(body, []byte(k.code)) {
			return k.code, detail
		}
	}
	lower := strings.ToLower(string(body))
	for _, k := range knownTexts {
		if strings.Contains(lower, k.text) {
			return k.code, detail
		}
	}
	return firstNonEmpty(candidates...), detail
}

func isKnown(code string) bool {
	for _, k := range knownCodes {
		if k.code == code {
			return true
		}
	}
	return false
}

// nested decodes a message that is itself a JSON object, as in the Teams
// shape, and returns its subCode and details.
func nested(msg string) (subCode, details string) {
	msg = strings.TrimSpace(msg)
	if !strings.HasPrefix(msg, "{") {
		return "", ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(msg), &m) != nil {
		return "", ""
	}
	return str(m["subCode"]), firstNonEmpty(str(m["details"]), str(m["message"]))
}

// object decodes raw as a JSON object, or returns nil.
func object(raw json.RawMessage) map[string]json.RawMessage {
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

// str returns a JSON string's value or a JSON number's text; "" otherwise.
func str(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch {
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String()
		}
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

var (
	titleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
	// Secrets that must never reach a result: JWTs and bearer credentials.
	jwtRE    = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}(\.[A-Za-z0-9_\-]*)?`)
	bearerRE = regexp.MustCompile(`(?i)(bearer|access_token|client_secret|password)(["'\s:=]+)[^\s"',&]+`)
)

// plainText turns a non-JSON body (an HTML error page or plain text) into
// a one-line detail: the page title, else the text without tags.
func plainText(body []byte) string {
	s := string(body)
	if strings.HasPrefix(s, "<") {
		if m := titleRE.FindStringSubmatch(s); m != nil && strings.TrimSpace(m[1]) != "" {
			return m[1]
		}
		return tagRE.ReplaceAllString(s, " ")
	}
	return s
}

// sanitize makes s a short single line safe to store: valid UTF-8, no
// control characters, collapsed spaces, tokens redacted, at most max runes.
func sanitize(s string, max int) string {
	if s == "" {
		return ""
	}
	if len(s) > 1<<16 { // bound the work on huge bodies
		s = s[:1<<16]
	}
	s = strings.ToValidUTF8(s, "")
	s = jwtRE.ReplaceAllString(s, "[redacted]")
	s = bearerRE.ReplaceAllString(s, "$1$2[redacted]")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = strings.TrimSpace(string(r[:max-1])) + "…"
	}
	return s
}
