package ingest_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/ingest"
)

// fuzzFormats maps the fuzzer's format byte to a Format; the last one is
// unknown, to exercise that error too.
var fuzzFormats = []ingest.Format{ingest.FormatAuto, ingest.FormatConversationReference, ingest.FormatTeamsFx, ingest.FormatCSV, "xml"}

// FuzzParse feeds arbitrary bytes to Parse in every format: it never
// panics or fails (a bytes.Reader cannot), and every input ends in records
// that pass Validate and are safe to store (valid UTF-8, no NUL, raw JSON
// that is valid), or problems that name the file and a line of the input
// and say what is wrong.
func FuzzParse(f *testing.F) {
	teamsfx := "{\n  \"_t-9_a:1\": " + withField(`,"tenantId":"t-1"`, ``) + ",\n  \"_t-1_19:abc@thread.tacv2\": " + channel + "\n}"
	csv := "tenant_id,user_id,conversation_id,conversation_type,service_url,opted_out\n" +
		"t-1,29:1,a:1,personal,https://smba.trafficmanager.net/amer/,true\n" +
		"t-1,\"29:2\"\"x\",,,https://smba.trafficmanager.net/amer/,\n"
	for _, s := range []struct {
		in     string
		format uint8
	}{
		{personal + "\n" + withField(`"a:17I0kl"`, `"a:2"`) + "\n", 0},
		{"[\n" + personal + ",\n  " + channel + "\n]\n", 0},
		{channel + "\n" + channel, 1},
		{teamsfx, 0},
		{teamsfx, 2},
		{csv, 0},
		{csv, 3},
		{"[\n" + personal + ",\n", 1},
		{"{\"user\": \n", 0},
		{"\xef\xbb\xbf" + personal, 0},
		{"\xff\xfe[\x00", 0},
		{withField(`"Megan Bowen"`, `"Megan\u0000Bowen"`), 0},
		{withField(`"Megan Bowen"`, `"Megan \ud800 Bowen"`), 0},
		{withField(`"Megan Bowen"`, `"Robert'); DROP TABLE conversation_references;--"`), 0},
		{withField(`https://smba.trafficmanager.net`, `https://user:pw@smba.trafficmanager.net`), 0},
		{`{"_t_c": {"serviceUrl":"https://a/","conversation":{"conversationType":"personal"}}}`, 2},
		{"tenant_id,user_id\nt,\"29:1\nx\"y,1\n", 3},
		{"tenant_id,opted_out,service_url,user_id\nt,maybe,https://a/,u\n", 3},
		{"[1, \"x\", null, {}]", 1},
		{"", 0},
		{personal, 4},
	} {
		f.Add([]byte(s.in), s.format)
	}
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		fm := fuzzFormats[int(format)%len(fuzzFormats)]
		recs, probs, err := ingest.Parse(bytes.NewReader(data), "in.json", fm)
		if err != nil {
			t.Fatalf("Parse(%q, %s): error %v from a bytes.Reader", data, fm, err)
		}
		lines := bytes.Count(data, []byte{'\n'}) + 1
		for _, r := range recs {
			if r.File != "in.json" || r.Line < 1 || r.Line > lines {
				t.Fatalf("record at %s:%d; the input has %d lines", r.File, r.Line, lines)
			}
			if err := ingest.Validate(r.Ref); err != nil {
				t.Fatalf("record at line %d fails Validate: %v", r.Line, err)
			}
			checkStorable(t, r.Ref)
		}
		for _, p := range probs {
			if p.File != "in.json" || p.Line < 0 || p.Line > lines {
				t.Fatalf("problem %q: line outside the input's %d lines", p, lines)
			}
			if strings.TrimSpace(p.Reason) == "" || !utf8.ValidString(p.Reason) {
				t.Fatalf("problem without a readable reason: %q", p)
			}
			if !strings.HasPrefix(p.String(), "in.json") {
				t.Fatalf("problem %q does not name the file", p)
			}
		}
	})
}

// checkStorable fails unless every text of ref can go into a PostgreSQL
// TEXT column as is.
func checkStorable(t *testing.T, ref blockreport.Reference) {
	t.Helper()
	for _, s := range []string{ref.TenantID, ref.UserID, ref.AADObjectID, ref.UserName, ref.Email, ref.ConversationID,
		string(ref.ConversationType), ref.TeamID, ref.ServiceURL, ref.BotID, ref.ChannelID, ref.Locale, string(ref.Raw)} {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			t.Fatalf("field %q is not storable text (invalid UTF-8 or NUL)", s)
		}
	}
	if !ref.ConversationType.Valid() {
		t.Fatalf("conversation type %q", ref.ConversationType)
	}
	if len(ref.Raw) > 0 && !json.Valid(ref.Raw) {
		t.Fatalf("raw record %q is not valid JSON", ref.Raw)
	}
}
