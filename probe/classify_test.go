package probe

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	blockreport "github.com/blockreport/blockreport"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		want       blockreport.Status
		wantReason string
		wantDetail string // substring; "" means must be empty
	}{
		{"200 activity id", 200, `{"id":"1:abc"}`, blockreport.StatusReachable, "HTTP 200", ""},
		{"201 empty", 201, ``, blockreport.StatusReachable, "HTTP 201", ""},
		{"202 with error-looking body", 202, `{"error":{"code":"ConversationBlockedByUser"}}`, blockreport.StatusReachable, "HTTP 202", ""},

		{"blocked standard envelope", 403,
			`{"error":{"code":"ConversationBlockedByUser","message":"User blocked the conversation with the bot."}}`,
			blockreport.StatusBlocked, "ConversationBlockedByUser", "User blocked the conversation"},
		{"blocked teams shape CRLF", 403,
			"{\"errorCode\":209,\"message\":\"{\\r\\n  \\\"subCode\\\": \\\"MessageWritesBlocked\\\",\\r\\n  \\\"details\\\": \\\"Thread is blocked from message writes.\\\",\\r\\n  \\\"errorCode\\\": null,\\r\\n  \\\"errorSubCode\\\": null\\r\\n}\"}",
			blockreport.StatusBlocked, "MessageWritesBlocked", "Thread is blocked from message writes."},
		{"blocked teams shape LF", 403,
			"{\"errorCode\":209,\"message\":\"{\\n  \\\"subCode\\\": \\\"MessageWritesBlocked\\\",\\n  \\\"details\\\": \\\"Thread is blocked from message writes.\\\",\\n  \\\"errorCode\\\": null,\\n  \\\"errorSubCode\\\": null\\n}\"}",
			blockreport.StatusBlocked, "MessageWritesBlocked", "Thread is blocked"},
		{"blocked teams shape message as object", 403,
			`{"errorCode":209,"message":{"subCode":"MessageWritesBlocked","details":"Thread is blocked from message writes."}}`,
			blockreport.StatusBlocked, "MessageWritesBlocked", "Thread is blocked"},
		{"blocked sub-code inside envelope message", 403,
			`{"error":{"code":"Forbidden","message":"{\"subCode\":\"MessageWritesBlocked\",\"details\":\"Thread is blocked from message writes.\"}"}}`,
			blockreport.StatusBlocked, "MessageWritesBlocked", "Thread is blocked"},
		{"blocked plain text field report", 403, `403 User blocked the conversation with the bot.`,
			blockreport.StatusBlocked, "ConversationBlockedByUser", "User blocked"},
		{"blocked code in non-JSON text", 403, `Forbidden: ConversationBlockedByUser (tcid=0)`,
			blockreport.StatusBlocked, "ConversationBlockedByUser", "Forbidden: ConversationBlockedByUser"},

		{"blocked: the user disabled the bot", 403,
			`{"error":{"code":"BotDisabledByUser","message":"The user disabled this bot."}}`,
			blockreport.StatusBlocked, "BotDisabledByUser", "user disabled"},
		{"blocked: BotDisabledByUser in plain text", 403, `Forbidden: BotDisabledByUser`,
			blockreport.StatusBlocked, "BotDisabledByUser", "Forbidden"},
		{"forbidden keeps NotEnoughPermissions", 403,
			`{"error":{"code":"NotEnoughPermissions","message":"The bot does not have enough permissions."}}`,
			blockreport.StatusForbidden, "NotEnoughPermissions", "enough permissions"},
		{"forbidden keeps TenantNoPermission", 403,
			`{"error":{"code":"TenantNoPermission","message":"The tenant does not permit this."}}`,
			blockreport.StatusForbidden, "TenantNoPermission", "tenant does not permit"},
		{"forbidden keeps CapabilityOverride", 403,
			`{"error":{"code":"CapabilityOverride","message":"Not allowed by a capability override."}}`,
			blockreport.StatusForbidden, "CapabilityOverride", "capability override"},
		{"forbidden keeps CapabilityOverride from an HTML page", 403,
			`<html><title>Forbidden</title><body>CapabilityOverride</body></html>`,
			blockreport.StatusForbidden, "CapabilityOverride", "Forbidden"},
		{"413 message too big", 413,
			`{"error":{"code":"MessageSizeTooBig","message":"Message size too large."}}`,
			blockreport.StatusFailed, "MessageSizeTooBig", "too large"},
		{"uninstalled roster", 403,
			`{"error":{"code":"BotNotInConversationRoster","message":"The bot is not part of the conversation roster."}}`,
			blockreport.StatusUninstalled, "BotNotInConversationRoster", "not part of the conversation roster"},
		{"uninstalled forbidden operation", 403,
			`{"error":{"code":"ForbiddenOperationException","message":"Bot is not installed in user's personal scope"}}`,
			blockreport.StatusUninstalled, "ForbiddenOperationException", "personal scope"},
		{"admin disabled", 403,
			`{"error":{"code":"BotDisabledByAdmin","message":"The tenant admin disabled this bot"}}`,
			blockreport.StatusAdminDisabled, "BotDisabledByAdmin", "tenant admin disabled"},
		{"admin disabled standardizedError", 403,
			`{"errorCode":0,"standardizedError":{"errorCode":209,"errorSubCode":1,"errorDescription":"The tenant admin disabled this bot"}}`,
			blockreport.StatusAdminDisabled, "BotDisabledByAdmin", "The tenant admin disabled this bot"},
		{"standardizedError unknown", 403,
			`{"errorCode":0,"standardizedError":{"errorCode":209,"errorSubCode":7,"errorDescription":"Something else"}}`,
			blockreport.StatusForbidden, "209/7", "Something else"},

		{"invalid bot api host", 403,
			`{"error":{"code":"InvalidBotApiHost","message":"Invalid bot api host. For GCC tenants, call https://smba.infra.gcc.teams.microsoft.com"}}`,
			blockreport.StatusForbidden, "InvalidBotApiHost", "Invalid bot api host"},
		{"not enough permissions", 403, `{"error":{"code":"NotEnoughPermissions","message":"missing RSC"}}`,
			blockreport.StatusForbidden, "NotEnoughPermissions", "missing RSC"},
		{"403 empty body", 403, ``, blockreport.StatusForbidden, "HTTP 403", ""},
		{"403 whitespace body", 403, " \r\n", blockreport.StatusForbidden, "HTTP 403", ""},
		{"403 HTML page", 403, `<!DOCTYPE html><html><head><title>403 - Forbidden: Access is denied.</title></head><body><h1>Server Error</h1></body></html>`,
			blockreport.StatusForbidden, "HTTP 403", "403 - Forbidden: Access is denied."},
		{"403 teams shape unknown subcode", 403,
			`{"errorCode":209,"message":"{\"subCode\":\"SomethingNew\",\"details\":\"new\"}"}`,
			blockreport.StatusForbidden, "SomethingNew", "new"},

		{"not found", 404, `{"error":{"code":"ConversationNotFound","message":"Conversation not found."}}`,
			blockreport.StatusNotFound, "ConversationNotFound", "Conversation not found."},
		{"member not found", 404, `{"error":{"code":"MemberNotFoundInConversation","message":"Member not found"}}`,
			blockreport.StatusNotFound, "MemberNotFoundInConversation", "Member not found"},
		{"404 activity not found is not the conversation", 404, `{"error":{"code":"ActivityNotFoundInConversation","message":"Conversation not found."}}`,
			blockreport.StatusFailed, "ActivityNotFoundInConversation", "Conversation not found."},
		{"404 HTML", 404, `<html><body>Not Found</body></html>`, blockreport.StatusFailed, "HTTP 404", "Not Found"},

		{"429 throttled", 429, `{"error":{"code":"Throttled","message":"Too many requests."}}`,
			blockreport.StatusThrottled, "Throttled", "Too many requests."},
		{"429 empty", 429, ``, blockreport.StatusThrottled, "HTTP 429", ""},
		{"500 service error", 500, `{"error":{"code":"ServiceError","message":"Internal server error"}}`,
			blockreport.StatusFailed, "ServiceError", "Internal server error"},
		{"502", 502, `{"error":{"code":"ServiceError","message":"Failure due to: AclCheckFailed."}}`,
			blockreport.StatusFailed, "ServiceError", "AclCheckFailed"},
		{"503 empty", 503, ``, blockreport.StatusFailed, "HTTP 503", ""},
		{"504 HTML gateway", 504, "<html>\n<head><title>504 Gateway Time-out</title></head>\n</html>", blockreport.StatusFailed, "HTTP 504", "504 Gateway Time-out"},
		{"412", 412, `{"error":{"code":"PreconditionFailed","message":"Precondition failed, please try again."}}`,
			blockreport.StatusFailed, "PreconditionFailed", "Precondition failed"},
		{"400 bad argument", 400, `{"error":{"code":"Bad Argument","message":"Activity.From field is required"}}`,
			blockreport.StatusFailed, "Bad Argument", "Activity.From"},
		{"401", 401, `{"error":{"code":"BotNotRegistered","message":"No registration found for this bot."}}`,
			blockreport.StatusFailed, "BotNotRegistered", "No registration"},
		{"302 redirect", 302, ``, blockreport.StatusFailed, "HTTP 302", ""},
		{"status 0", 0, `garbage`, blockreport.StatusFailed, "HTTP 0", "garbage"},
		{"JSON array body", 403, `[1,2,3]`, blockreport.StatusForbidden, "HTTP 403", "[1,2,3]"},
		{"wrong types in envelope", 403, `{"error":{"code":42,"message":["x"]}}`, blockreport.StatusForbidden, "42", ""},
		{"error is a string", 500, `{"error":"boom"}`, blockreport.StatusFailed, "HTTP 500", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason, detail := Classify(tt.status, []byte(tt.body))
			if got != tt.want {
				t.Errorf("status = %q, want %q", got, tt.want)
			}
			if reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", reason, tt.wantReason)
			}
			if tt.wantDetail == "" && detail != "" {
				t.Errorf("detail = %q, want empty", detail)
			}
			if !strings.Contains(detail, tt.wantDetail) {
				t.Errorf("detail = %q, want it to contain %q", detail, tt.wantDetail)
			}
		})
	}
}

func TestClassifyDetailIsShortAndSafe(t *testing.T) {
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FwaS5ib3RmcmFtZXdvcmsuY29tIn0.c2lnbmF0dXJl"
	body := `{"error":{"code":"ServiceError","message":"token ` + jwt + ` rejected; Authorization: Bearer abc.def.ghi; ` +
		strings.Repeat("é long ", 200) + `"}}`
	_, _, detail := Classify(500, []byte(body))
	if strings.Contains(detail, "eyJhbGci") || strings.Contains(detail, "abc.def.ghi") {
		t.Errorf("detail leaks a token: %q", detail)
	}
	if n := utf8.RuneCountInString(detail); n > maxDetail {
		t.Errorf("detail has %d runes, want <= %d", n, maxDetail)
	}
	if strings.ContainsAny(detail, "\r\n\t") {
		t.Errorf("detail is not one line: %q", detail)
	}

	_, reason, _ := Classify(403, []byte(`{"error":{"code":"`+strings.Repeat("X", 500)+`"}}`))
	if n := utf8.RuneCountInString(reason); n > maxReason {
		t.Errorf("reason has %d runes, want <= %d", n, maxReason)
	}
}

// Secrets the fuzz seeds put in bodies; Classify must never repeat them.
const (
	fuzzJWT    = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FwaS5ib3RmcmFtZXdvcmsuY29tIn0.c2lnbmF0dXJl"
	fuzzSecret = "S3cr3t-canary-7f3a9"
)

func FuzzClassify(f *testing.F) {
	f.Add(200, []byte(`{"id":"1"}`))
	f.Add(403, []byte(`{"error":{"code":"ConversationBlockedByUser","message":"User blocked the conversation with the bot."}}`))
	f.Add(403, []byte("{\"errorCode\":209,\"message\":\"{\\r\\n\\\"subCode\\\":\\\"MessageWritesBlocked\\\"}\"}"))
	f.Add(403, []byte(`{"errorCode":0,"standardizedError":{"errorCode":209,"errorSubCode":1,"errorDescription":"The tenant admin disabled this bot"}}`))
	f.Add(403, []byte{})
	f.Add(504, []byte(`<html><title>504</title></html>`))
	f.Add(0, []byte{0xff, 0xfe, '{'})
	f.Add(500, []byte(`{"error":{"code":"ServiceError","message":"token `+fuzzJWT+` rejected; Authorization: Bearer `+fuzzSecret+`"}}`))
	f.Add(401, []byte(`{"error":"invalid_client","error_description":"client_secret=`+fuzzSecret+`"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		st, reason, detail := Classify(status, body)
		if !st.Valid() {
			t.Fatalf("Classify(%d, %q) = invalid status %q", status, body, st)
		}
		if st == blockreport.StatusOptedOut || st == blockreport.StatusInvalid {
			t.Fatalf("Classify(%d, %q) = %q, a status only the engine may give", status, body, st)
		}
		if reason == "" {
			t.Fatalf("Classify(%d, %q): empty reason", status, body)
		}
		if !utf8.ValidString(reason) || !utf8.ValidString(detail) {
			t.Fatalf("Classify(%d, %q): invalid UTF-8 in %q / %q", status, body, reason, detail)
		}
		if utf8.RuneCountInString(detail) > maxDetail || utf8.RuneCountInString(reason) > maxReason {
			t.Fatalf("Classify(%d, %q): reason/detail too long", status, body)
		}
		if strings.IndexFunc(reason+detail, unicode.IsControl) >= 0 {
			t.Fatalf("Classify(%d, %q): control character in %q / %q", status, body, reason, detail)
		}
		// The status follows the HTTP status class; the body only refines
		// a 403 or a 404.
		ok2xx := status >= 200 && status < 300
		switch {
		case (st == blockreport.StatusReachable) != ok2xx:
			t.Fatalf("Classify(%d, %q) = %q: reachable exactly for 2xx", status, body, st)
		case (st == blockreport.StatusThrottled) != (status == 429):
			t.Fatalf("Classify(%d, %q) = %q: throttled exactly for 429", status, body, st)
		case st == blockreport.StatusNotFound && status != 404,
			(st == blockreport.StatusBlocked || st == blockreport.StatusUninstalled ||
				st == blockreport.StatusAdminDisabled || st == blockreport.StatusForbidden) && status != 403:
			t.Fatalf("Classify(%d, %q) = %q from the body alone", status, body, st)
		}
		// A JWT is recognisable anywhere; a plain secret only after a
		// keyword (Bearer, client_secret, ...), which the seeds hold.
		if bytes.Contains(body, []byte(fuzzJWT)) && strings.Contains(reason+detail, fuzzJWT) {
			t.Fatalf("Classify(%d, %q) repeats a token: %q / %q", status, body, reason, detail)
		}
		if st2, r2, d2 := Classify(status, body); st2 != st || r2 != reason || d2 != detail {
			t.Fatalf("Classify(%d, %q) is not deterministic", status, body)
		}
	})
}
