package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func renderHTML(t *testing.T, src Source, runID int64, opts Options) string {
	t.Helper()
	r, err := Build(context.Background(), src, runID, opts)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestHTMLGolden(t *testing.T) {
	tests := []struct {
		name  string
		runID int64
		opts  Options
	}{
		{"run3", 3, Options{}},
		{"run3-redacted", 3, Options{Redact: true}},
		{"first-run", 1, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fixture()
			if tt.runID == 1 {
				// The first run, alone, with two rows.
				src.runs = src.runs[:1]
				src.rows[1] = fixture().rows[3][:2]
			}
			got := renderHTML(t, src, tt.runID, tt.opts)
			golden := filepath.Join("testdata", tt.name+".golden.html")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("HTML differs from %s (run go test ./report -run HTML -update and review the diff):\n%s", golden, firstDiff(string(want), got))
			}
		})
	}
}

// firstDiff shows the first differing line of two texts.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, x, y)
		}
	}
	return ""
}

func TestHTMLHostileDataStaysData(t *testing.T) {
	out := renderHTML(t, fixture(), 3, Options{})
	// Exactly one script element: ours.
	if n := strings.Count(out, "<script"); n != 1 {
		t.Errorf("%d <script occurrences, want 1 (ours)", n)
	}
	if strings.Contains(out, "<script>alert") {
		t.Error("hostile script element is not escaped")
	}
	if !strings.Contains(out, `<td class="w">&lt;script&gt;alert(1)&lt;/script&gt;</td>`) {
		t.Error("hostile script name is not shown escaped")
	}
	// Every hostile name appears literally once the HTML is decoded.
	text := html.UnescapeString(out)
	for _, s := range []string{hostileScript, hostileFormula, hostilePlus, hostileAt, hostileMinus, "Ann[U+202E]gnp.exe", hostileEmoji} {
		if !strings.Contains(text, ">"+s+"</td>") {
			t.Errorf("HTML lacks hostile string %q as a cell", s)
		}
	}
	// A right-to-left override is shown, never applied.
	if strings.ContainsRune(out, '\u202E') {
		t.Error("HTML contains a raw U+202E that would reorder the text")
	}
}

func TestHTMLContentSecurityPolicy(t *testing.T) {
	out := renderHTML(t, fixture(), 3, Options{})
	m := regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]+)">`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no CSP meta tag")
	}
	csp := html.UnescapeString(m[1])
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q allows %q", csp, bad)
		}
	}
	if !strings.HasPrefix(csp, "default-src 'none';") {
		t.Errorf("CSP %q does not start with default-src 'none'", csp)
	}
	// The hashes allow exactly the inline style and script the page has.
	for _, el := range []struct{ tag, directive string }{{"style", "style-src"}, {"script", "script-src"}} {
		body := regexp.MustCompile(`(?s)<` + el.tag + `>(.*?)</` + el.tag + `>`).FindStringSubmatch(out)
		if body == nil {
			t.Fatalf("no <%s> element", el.tag)
		}
		sum := sha256.Sum256([]byte(body[1]))
		want := el.directive + " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	// No external resources and no inline style attributes or handlers
	// (a hash-based CSP would block them).
	for _, bad := range []string{"src=", "href=", " style=", "onclick", "oninput", "onload", "@import", "url("} {
		if strings.Contains(out, bad) {
			t.Errorf("HTML contains %q", bad)
		}
	}
	if !strings.Contains(out, "@media print") || !strings.Contains(out, `name="viewport"`) {
		t.Error("HTML lacks print styles or a viewport")
	}
}

func TestHTMLMutingAndMode(t *testing.T) {
	src := fixture()
	src.runs[2].Mode = "members"
	out := renderHTML(t, src, 3, Options{})
	for _, s := range []string{"Muting cannot be observed", "blocked users show as reachable", "uninstalled, admin disabled, not found"} {
		if !strings.Contains(out, s) {
			t.Errorf("HTML lacks %q", s)
		}
	}
}

func TestHTMLRedacted(t *testing.T) {
	src := fixture()
	out := renderHTML(t, src, 3, Options{Redact: true})
	for _, s := range idStrings(src) {
		for _, form := range []string{s, strings.ReplaceAll(strings.ReplaceAll(s, "<", "&lt;"), ">", "&gt;")} {
			if strings.Contains(out, form) {
				t.Errorf("redacted HTML contains %q", form)
			}
		}
	}
	for _, s := range []string{"tenant-aaaa", "Blocked (2)", "redacted"} {
		if !strings.Contains(out, s) {
			t.Errorf("redacted HTML lacks %q", s)
		}
	}
	if strings.Contains(out, "<script") {
		t.Error("redacted HTML has a script although it has no lists to filter")
	}
}

func TestHTMLListCap(t *testing.T) {
	src := &memSource{runs: []blockreport.Run{{ID: 1, StartedAt: t0, Mode: "typing", State: blockreport.RunFinished}}, rows: map[int64][]blockreport.Row{}}
	for i := int64(1); i <= DefaultListLimit+3; i++ {
		src.rows[1] = append(src.rows[1], row(i, "t", "n", blockreport.ConversationPersonal, blockreport.StatusUninstalled, "", t0))
	}
	out := renderHTML(t, src, 1, Options{})
	if !strings.Contains(out, "Showing the first 5,000 of 5,003; 3 more are in the workbook (sheet “Uninstalled”), and <code>blockreport export --run 1</code> writes every row of the lists as CSV.") {
		t.Error("HTML lacks the cap message")
	}
	if n := strings.Count(out, "<td>BotNotInConversationRoster</td>"); n != DefaultListLimit {
		t.Errorf("%d rows listed, want %d", n, DefaultListLimit)
	}
}
