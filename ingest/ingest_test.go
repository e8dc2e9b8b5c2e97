package ingest_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/ingest"
)

const personal = `{"activityId":"1485983408511","user":{"id":"29:1XJK","name":"Megan Bowen","aadObjectId":"7faf8ab2","userPrincipalName":"megan@contoso.com"},"bot":{"id":"28:c9e8","name":"TestBot"},"conversation":{"conversationType":"personal","id":"a:17I0kl","tenantId":"t-1"},"channelId":"msteams","locale":"en-US","serviceUrl":"https://smba.trafficmanager.net/amer/"}`

const channel = `{
  "user": {"id": "29:2", "name": "Someone"},
  "bot": {"id": "28:c9e8"},
  "conversation": {"conversationType": "channel", "id": "19:abc@thread.tacv2;messageid=42", "isGroup": true, "tenantId": "t-1"},
  "channelData": {"team": {"id": "19:team@thread.tacv2"}},
  "channelId": "msteams",
  "serviceUrl": "https://smba.trafficmanager.net/emea/"
}`

// withField replaces old with new in the personal reference.
func withField(old, new string) string {
	if !strings.Contains(personal, old) {
		panic("withField: " + old + " not in reference")
	}
	return strings.Replace(personal, old, new, 1)
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name     string
		format   ingest.Format
		appID    string // ReadFor's; "" is Parse
		in       string
		lines    []int    // lines of the records
		problems []string // "f:LINE: reason" prefixes
	}{
		{name: "json lines", in: personal + "\n\n" + withField(`"a:17I0kl"`, `"a:2"`) + "\n", lines: []int{1, 3}},
		{name: "json lines with a bad line", in: personal + "\n{\"user\": \n" + withField(`"a:17I0kl"`, `"a:2"`),
			lines: []int{1, 3}, problems: []string{"f:2: malformed JSON"}},
		{name: "json array", in: "[\n" + personal + ",\n  " + channel + "\n]\n", lines: []int{2, 3}},
		{name: "json array, explicit format", format: ingest.FormatConversationReference, in: "[" + personal + "]", lines: []int{1}},
		{name: "pretty-printed objects", in: channel + "\n" + channel, lines: []int{1, 9}},
		{name: "array with a syntax error", in: "[\n" + personal + ",\n" + personal + "\n" + personal + "\n]",
			lines: []int{2, 3}, problems: []string{"f:4: malformed JSON: expected comma after array element"}},
		{name: "truncated array", in: "[\n" + personal + ",\n", lines: []int{2}, problems: []string{"f:3: malformed JSON: unexpected end of input"}},
		{name: "array of non-objects", in: "[1]", problems: []string{"f:1: not a conversation reference: want a JSON object"}},
		{name: "wrong field type", in: `{"user":"x","serviceUrl":"https://a/"}`, problems: []string{"f:1: not a conversation reference: field user has a JSON string"}},
		{name: "data after the array", in: "[" + personal + "]\n]", lines: []int{1}, problems: []string{"f:2: malformed JSON: unexpected data"}},
		{name: "teamsfx", in: "{\n  \"_t-9_a:1\": " + withField(`,"tenantId":"t-1"`, ``) + ",\n  \"_t-1_19:abc@thread.tacv2\": " + channel + "\n}",
			lines: []int{2, 3}},
		{name: "teamsfx explicit, not an object", format: ingest.FormatTeamsFx, in: "[]", problems: []string{"f:1: not a TeamsFx notification store"}},
		{name: "csv", in: "Tenant_ID,user_id,conversation_id,conversation_type,SERVICE_URL,opted_out\n" +
			"t-1,29:1,a:1,personal,https://smba.trafficmanager.net/amer/,true\n" +
			"t-1,29:2,,,https://smba.trafficmanager.net/amer/,\n", lines: []int{2, 3}},
		{name: "csv unknown columns", in: "tenant_id,colour,size\nt,1,2\n",
			problems: []string{`f:1: CSV header has unknown column(s) "colour", "size"`}},
		{name: "csv duplicate column", in: "tenant_id,TENANT_ID\nt,1\n", problems: []string{`f:1: CSV header names column "tenant_id" twice`}},
		{name: "csv field count and bool", in: "tenant_id,user_id,conversation_type,service_url,opted_out\nt,29:1,personal\nt,29:1,personal,https://a/,maybe\n",
			problems: []string{"f:2: 3 fields, the header has 5", `f:3: opted_out "maybe": want true or false`}},
		{name: "csv bad quote", in: "tenant_id,user_id\nt,\"29:1\nx\"y,1\n", problems: []string{"f:3: malformed CSV"}},
		{name: "empty file", in: "", problems: []string{"f: empty file"}},
		{name: "blank file", in: " \n\t\n", problems: []string{"f: empty file"}},
		{name: "not UTF-8", in: personal + "\n" + personal + "\n{\"user\":{\"name\":\"Ren\xe9\"}}\n", lines: []int{1, 2}, problems: []string{"f:3: not valid UTF-8"}},
		{name: "not UTF-8 in an array", in: "[\n" + personal + ",\n{\"user\":{\"name\":\"Ren\xe9\"}},\n" + personal + "]", lines: []int{2, 4}, problems: []string{"f:3: not valid UTF-8"}},
		{name: "UTF-16", in: "\xff\xfe[\x00", problems: []string{"f:1: not valid UTF-8"}},
		{name: "UTF-8 BOM", in: "\xef\xbb\xbf" + personal, lines: []int{1}},
		{name: "missing tenant", in: withField(`,"tenantId":"t-1"`, ``), problems: []string{"f:1: missing tenant id"}},
		{name: "missing service URL", in: withField(`"https://smba.trafficmanager.net/amer/"`, `""`), problems: []string{"f:1: missing service URL"}},
		{name: "personal without user", in: withField(`"user":{"id":"29:1XJK",`, `"user":{`), problems: []string{"f:1: personal conversation without a user"}},
		{name: "unknown conversation type", in: withField(`"personal"`, `"meeting"`), problems: []string{`f:1: unknown conversation type "meeting"`}},
		{name: "plain http", in: withField(`https://smba.trafficmanager.net`, `http://smba.trafficmanager.net`), problems: []string{"f:1: service URL \"http://smba.trafficmanager.net/amer/\" is plain http"}},
		{name: "relative service URL", in: withField(`https://smba.trafficmanager.net/amer/`, `smba.trafficmanager.net/amer/`), problems: []string{"f:1: service URL \"smba.trafficmanager.net/amer/\" is not an absolute https URL"}},
		{name: "http to loopback", in: withField(`https://smba.trafficmanager.net/amer/`, `http://127.0.0.1:8080/amer/`) + "\n" +
			withField(`https://smba.trafficmanager.net/amer/`, `http://localhost/amer/`) + "\n" +
			withField(`https://smba.trafficmanager.net/amer/`, `http://[::1]:1/amer/`), lines: []int{1, 2, 3}},
		// --app-id: another bot's references are problems, with or
		// without "28:", as DecodeStore does for store formats.
		{name: "json lines, another bot", appID: "c9e8",
			in: personal + "\n" + withField(`"28:c9e8"`, `"28:0ther"`) + "\n" + withField(`"a:17I0kl"`, `"a:2"`) + "\n" +
				strings.Replace(withField(`"28:c9e8"`, `"C9E8"`), `"a:17I0kl"`, `"a:3"`, 1) + "\n",
			lines:    []int{1, 3, 4},
			problems: []string{`f:2: bound to bot "28:0ther", not --app-id "c9e8": the Bot Connector would answer "Failed to decrypt conversation ID"`}},
		{name: "json array, another bot", appID: "28:c9e8",
			in:       "[\n" + withField(`"28:c9e8"`, `"0ther"`) + ",\n" + channel + "\n]",
			lines:    []int{3},
			problems: []string{`f:2: bound to bot "0ther", not --app-id "28:c9e8": the Bot Connector would answer "Failed to decrypt conversation ID"`}},
		{name: "one object, another bot", appID: "0ther", in: channel,
			problems: []string{`f:1: bound to bot "28:c9e8", not --app-id "0ther"`}},
		{name: "teamsfx, another bot", appID: "0ther", in: "{\n  \"_t-1_19:abc@thread.tacv2\": " + channel + "\n}",
			problems: []string{`f:2: bound to bot "28:c9e8"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			format := c.format
			if format == "" {
				format = ingest.FormatAuto
			}
			recs, probs, err := ingest.Parse(strings.NewReader(c.in), "f", format)
			if c.appID != "" {
				recs, probs, err = nil, nil, nil
				for rec, e := range ingest.ReadFor(strings.NewReader(c.in), "f", format, c.appID) {
					var p ingest.Problem
					switch {
					case errors.As(e, &p):
						probs = append(probs, p)
					case e != nil:
						err = e
					default:
						recs = append(recs, rec)
					}
				}
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var lines []int
			for _, r := range recs {
				lines = append(lines, r.Line)
				if r.File != "f" {
					t.Errorf("record file = %q", r.File)
				}
			}
			if len(lines) != len(c.lines) || (len(lines) > 0 && !equal(lines, c.lines)) {
				t.Errorf("record lines = %v, want %v (problems %v)", lines, c.lines, probs)
			}
			if len(probs) != len(c.problems) {
				t.Fatalf("problems = %v, want %q", probs, c.problems)
			}
			for i, p := range probs {
				if !strings.HasPrefix(p.String(), c.problems[i]) {
					t.Errorf("problem %d = %q, want prefix %q", i, p, c.problems[i])
				}
			}
		})
	}
}

func equal(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestParseFields(t *testing.T) {
	recs, probs, err := ingest.Parse(strings.NewReader("["+personal+",\n"+channel+"]"), "f", ingest.FormatAuto)
	if err != nil || len(probs) > 0 || len(recs) != 2 {
		t.Fatalf("Parse = %d records, %v, %v", len(recs), probs, err)
	}
	want := blockreport.Reference{
		TenantID: "t-1", UserID: "29:1XJK", AADObjectID: "7faf8ab2", UserName: "Megan Bowen", Email: "megan@contoso.com",
		ConversationID: "a:17I0kl", ConversationType: blockreport.ConversationPersonal,
		ServiceURL: "https://smba.trafficmanager.net/amer/", BotID: "28:c9e8", ChannelID: "msteams", Locale: "en-US",
	}
	got := recs[0].Ref
	if string(got.Raw) != personal {
		t.Errorf("raw = %s, want the record", got.Raw)
	}
	got.Raw = nil
	if got.Key() != want.Key() || got.Email != want.Email || got.AADObjectID != want.AADObjectID || got.UserName != want.UserName ||
		got.ServiceURL != want.ServiceURL || got.BotID != want.BotID || got.Locale != want.Locale || got.ConversationType != want.ConversationType {
		t.Errorf("personal reference = %+v, want %+v", got, want)
	}
	ch := recs[1].Ref
	if ch.ConversationID != "19:abc@thread.tacv2" || ch.TeamID != "19:team@thread.tacv2" || ch.UserID != "" || ch.UserName != "" {
		t.Errorf("channel reference = %+v; want the channel id without the message id, the team, and no user", ch)
	}

	// TeamsFx: the tenant and conversation come from the key when the
	// reference lacks them.
	in := `{"_t-9_a:1": {"user":{"id":"29:1"},"conversation":{"conversationType":"personal"},"serviceUrl":"https://a/"}}`
	recs, probs, _ = ingest.Parse(strings.NewReader(in), "f", ingest.FormatTeamsFx)
	if len(probs) > 0 || len(recs) != 1 || recs[0].Ref.TenantID != "t-9" || recs[0].Ref.ConversationID != "a:1" {
		t.Errorf("teamsfx = %+v, %v", recs, probs)
	}

	// CSV: columns map to fields; a user without a conversation is a
	// personal chat the probe will create.
	recs, probs, _ = ingest.Parse(strings.NewReader("tenant_id,user_id,email,service_url,opted_out\nt,29:1,a@b.c,https://a/,yes\n"), "f", ingest.FormatCSV)
	if len(probs) > 0 || len(recs) != 1 {
		t.Fatalf("csv = %+v, %v", recs, probs)
	}
	if r := recs[0].Ref; r.ConversationType != blockreport.ConversationPersonal || !r.OptedOut || r.Email != "a@b.c" || len(r.Raw) == 0 {
		t.Errorf("csv reference = %+v", r)
	}
}

func TestParseLongLine(t *testing.T) {
	// A 64 MB line must parse, not crash or be cut.
	name := strings.Repeat("x", 64<<20)
	in := withField(`"Megan Bowen"`, `"`+name+`"`) + "\n" + personal
	recs, probs, err := ingest.Parse(bytes.NewReader([]byte(in)), "f", ingest.FormatAuto)
	if err != nil || len(probs) > 0 || len(recs) != 2 || len(recs[0].Ref.UserName) != len(name) || recs[1].Line != 2 {
		t.Errorf("Parse of a 64 MB line: %d records, %v, %v", len(recs), probs, err)
	}
}

func TestValidate(t *testing.T) {
	ok := blockreport.Reference{TenantID: "t", UserID: "29:1", ConversationType: blockreport.ConversationPersonal, ServiceURL: "https://a/"}
	for _, c := range []struct {
		name string
		edit func(*blockreport.Reference)
		err  string
	}{
		{"valid", func(*blockreport.Reference) {}, ""},
		{"personal without conversation", func(r *blockreport.Reference) { r.ConversationID = "" }, ""},
		{"group chat without conversation", func(r *blockreport.Reference) { r.ConversationType = blockreport.ConversationGroupChat }, "groupChat conversation without a conversation id"},
		{"no tenant", func(r *blockreport.Reference) { r.TenantID = "" }, "missing tenant id"},
		{"no type", func(r *blockreport.Reference) { r.ConversationType = "" }, "missing conversation type"},
		{"ftp", func(r *blockreport.Reference) { r.ServiceURL = "ftp://a/" }, "not an absolute https URL"},
		{"no host", func(r *blockreport.Reference) { r.ServiceURL = "https:///x" }, "not an absolute https URL"},
		{"http to 127.8.0.1", func(r *blockreport.Reference) { r.ServiceURL = "http://127.8.0.1/" }, ""},
		{"http to 10.0.0.1", func(r *blockreport.Reference) { r.ServiceURL = "http://10.0.0.1/" }, "plain http"},
		{"NUL", func(r *blockreport.Reference) { r.UserName = "a\x00b" }, "NUL"},
	} {
		r := ok
		c.edit(&r)
		err := ingest.Validate(r)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: Validate = %v, want %q", c.name, err, c.err)
		}
	}
}
