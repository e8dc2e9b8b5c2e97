package ingest_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/blockreport/blockreport/ingest"
)

// TestParseHostileInput shows that hostile or oversized input ends in a
// clear, short problem naming file and line, or in a safe record.
func TestParseHostileInput(t *testing.T) {
	big := strings.Repeat("x", 50<<20)
	for _, c := range []struct {
		name    string
		format  ingest.Format
		in      string
		records int
		problem string // prefix of the only problem; "" for none
	}{
		{name: "50 MB unterminated line", in: personal + "\n{\"user\":{\"name\":\"" + big + "\n" + personal,
			records: 2, problem: "f:2: malformed JSON"},
		{name: "1 MB line of garbage", in: personal + "\n{" + big[:1<<20] + "}\n" + personal,
			records: 2, problem: "f:2: malformed JSON: invalid character 'x'"},
		{name: "1 MB service URL", in: withField(`"https://smba.trafficmanager.net/amer/"`, `"ftp://`+big[:1<<20]+`"`),
			problem: `f:1: service URL "ftp://xxxx`},
		{name: "1 MB user id", in: withField(`"29:1XJK"`, `"29:`+big[:1<<20]+`"`),
			problem: "f:1: user id is 1048579 bytes long"},
		{name: "1 MB tenant id in CSV", format: ingest.FormatCSV,
			in: "tenant_id,user_id,service_url\n" + big[:1<<20] + ",29:1,https://a/\n", problem: "f:2: tenant id is 1048576 bytes long"},
		{name: "1 MB conversation type", in: withField(`"personal"`, `"`+big[:1<<20]+`"`),
			problem: `f:1: unknown conversation type "xxxx`},
		{name: "NUL escape in a name", in: withField(`"Megan Bowen"`, `"Megan\u0000Bowen"`), problem: "f:1: a field contains a NUL character"},
		{name: "NUL byte in JSON", in: withField(`"Megan Bowen"`, "\"Megan\x00Bowen\""), problem: "f:1: malformed JSON: invalid character '\\x00'"},
		{name: "NUL byte in CSV", format: ingest.FormatCSV, in: "tenant_id,user_id,user_name,service_url\nt,29:1,a\x00b,https://a/\n",
			problem: "f:2: a field contains a NUL character"},
		// Read streams, so a bad record rejects itself, not the records before it.
		{name: "invalid UTF-8 in CSV", format: ingest.FormatCSV, in: "tenant_id,user_id,user_name,service_url\nt,29:1,ok,https://a/\nt,29:2,Ren\xe9,https://a/\n",
			records: 1, problem: "f:3: not valid UTF-8"},
		{name: "lone surrogate escape becomes U+FFFD", in: withField(`"Megan Bowen"`, `"Megan \udc00"`), records: 1},
		{name: "SQL metacharacters are data", in: withField(`"Megan Bowen"`, `"Robert'); DROP TABLE conversation_references;--"`), records: 1},
		{name: "user info in the service URL is left to the probe", in: withField(`https://smba`, `https://u:pw@smba`), records: 1},
		{name: "IP literal is left to the probe", in: withField(`https://smba.trafficmanager.net`, `https://52.112.0.1`), records: 1},
		{name: "http to a non-loopback host", in: withField(`https://smba.trafficmanager.net`, `http://52.112.0.1`),
			problem: `f:1: service URL "http://52.112.0.1/amer/" is plain http`},
	} {
		t.Run(c.name, func(t *testing.T) {
			format := c.format
			if format == "" {
				format = ingest.FormatAuto
			}
			recs, probs, err := ingest.Parse(strings.NewReader(c.in), "f", format)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(recs) != c.records {
				t.Errorf("%d records, want %d", len(recs), c.records)
			}
			for _, r := range recs {
				checkStorable(t, r.Ref)
			}
			switch {
			case c.problem == "" && len(probs) > 0:
				t.Errorf("problems %.200q, want none", probs)
			case c.problem != "" && len(probs) != 1:
				t.Fatalf("problems %.200q, want one starting %q", probs, c.problem)
			case c.problem != "":
				p := probs[0].String()
				if !strings.HasPrefix(p, c.problem) {
					t.Errorf("problem %.200q, want prefix %q", p, c.problem)
				}
				if len(p) > 300 {
					t.Errorf("problem is %d bytes long, want a short line: %.200q", len(p), p)
				}
			}
		})
	}
}

// TestValidateIDLength: ids are index keys (PostgreSQL refuses index rows
// over ~2.7 kB), so each is capped; names, emails and the raw record are
// not (reports cut long text to a spreadsheet cell).
func TestValidateIDLength(t *testing.T) {
	recs, probs, _ := ingest.Parse(strings.NewReader(withField(`"29:1XJK"`, `"29:`+strings.Repeat("u", ingest.MaxIDBytes-3)+`"`)), "f", ingest.FormatAuto)
	if len(recs) != 1 || len(probs) != 0 {
		t.Errorf("a user id of exactly %d bytes: %d records, %v", ingest.MaxIDBytes, len(recs), probs)
	}
	name := strings.Repeat("n", 1<<20)
	recs, probs, _ = ingest.Parse(bytes.NewReader([]byte(withField(`"Megan Bowen"`, `"`+name+`"`))), "f", ingest.FormatAuto)
	if len(recs) != 1 || len(probs) != 0 || recs[0].Ref.UserName != name {
		t.Errorf("a 1 MB user name: %d records, %.200q; want it kept whole", len(recs), probs)
	}
}
