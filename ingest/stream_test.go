package ingest_test

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/ingest"
)

// linesReader produces n JSON Lines references without holding them.
type linesReader struct {
	n, i int
	buf  []byte
	fail error // returned after the n lines, if set
}

func (r *linesReader) Read(b []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.i == r.n {
			if r.fail != nil {
				return 0, r.fail
			}
			return 0, io.EOF
		}
		r.i++
		r.buf = []byte(withField(`"a:17I0kl"`, fmt.Sprintf(`"a:%d"`, r.i)) + "\n")
	}
	n := copy(b, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func TestReadStreams(t *testing.T) {
	// Breaking out of the loop stops reading.
	src := &linesReader{n: 1_000_000}
	n := 0
	for rec, err := range ingest.Read(src, "f", ingest.FormatAuto) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if rec.Line != n || rec.Ref.ConversationID != fmt.Sprintf("a:%d", n) {
			t.Fatalf("record %d: line %d, %+v", n, rec.Line, rec.Ref)
		}
		if n == 10 {
			break
		}
	}
	if src.i > 1000 {
		t.Errorf("read %d lines for 10 records", src.i)
	}
}

type failAfter struct {
	r   io.Reader
	err error
}

func (f failAfter) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err == io.EOF {
		err = f.err
	}
	return n, err
}

// TestReadIOError: a read failure ends the sequence with an error naming
// the input, after the records before it; it is not a Problem.
func TestReadIOError(t *testing.T) {
	boom := errors.New("disk on fire")
	for _, c := range []struct {
		format ingest.Format
		in     io.Reader
	}{
		{ingest.FormatAuto, &linesReader{n: 3, fail: boom}},
		{ingest.FormatAuto, failAfter{strings.NewReader("[" + personal + ",\n" + personal + ",\n" + personal + ",\n"), boom}},
		{ingest.FormatTeamsFx, failAfter{strings.NewReader("{\"_t_1\": " + personal + ",\n\"_t_2\": " + personal + ",\n\"_t_3\": " + personal + ",\n"), boom}},
		{ingest.FormatCSV, failAfter{strings.NewReader("tenant_id,user_id,service_url\nt,29:1,https://a/\nt,29:2,https://a/\nt,29:3,https://a/\n"), boom}},
	} {
		var recs, probs, errs int
		var last error
		for _, err := range ingest.Read(c.in, "f", c.format) {
			var p ingest.Problem
			switch {
			case errors.As(err, &p):
				probs++
			case err != nil:
				errs++
				last = err
			default:
				recs++
			}
		}
		if errs != 1 || !errors.Is(last, boom) || !strings.Contains(last.Error(), "read f") {
			t.Errorf("%s: %d errors, last %v; want one, the read error naming the input", c.format, errs, last)
		}
		if recs != 3 || probs != 0 {
			t.Errorf("%s: %d records, %d problems before the error; want 3, 0", c.format, recs, probs)
		}
	}
}

// TestDetectBoundedPrefix: auto-detection looks at the first PrefixSize
// bytes only, even when the first value is far longer.
func TestDetectBoundedPrefix(t *testing.T) {
	big := strings.Repeat("x", 4*ingest.PrefixSize)
	teamsfx := "{\"_t-1_a:1\": " + withField(`"Megan Bowen"`, `"`+big+`"`) + ",\n\"_t-1_a:2\": " + personal + "\n}"
	recs, probs, err := ingest.Parse(strings.NewReader(teamsfx), "f", ingest.FormatAuto)
	if err != nil || len(probs) > 0 || len(recs) != 2 || recs[0].Key != "_t-1_a:1" || recs[1].Line != 2 {
		t.Errorf("TeamsFx store with a long first value: %d records, %v, %v", len(recs), probs, err)
	}
	long := withField(`"Megan Bowen"`, `"`+big+`"`) + "\n" + personal + "\n"
	recs, probs, err = ingest.Parse(strings.NewReader(long), "f", ingest.FormatAuto)
	if err != nil || len(probs) > 0 || len(recs) != 2 || recs[1].Line != 2 {
		t.Errorf("JSON Lines with a first line longer than the prefix: %d records, %v, %v", len(recs), probs, err)
	}
}

func TestDocuments(t *testing.T) {
	docs := func(yield func(ingest.Document, error) bool) {
		for _, d := range []ingest.Document{
			{Key: "_t-9_a:1", Raw: []byte(withField(`,"tenantId":"t-1"`, ``))},
			{Key: "row2", Raw: []byte(`{"user":`)},
			{Key: "row3", Raw: []byte(withField(`"https://smba`, `"ftp://smba`))},
			{Key: "row4", Line: 4, Raw: []byte("{\"user\":{\"name\":\"Ren\xe9\"}}")},
		} {
			if !yield(d, nil) {
				return
			}
		}
		yield(ingest.Document{}, errors.New("table gone"))
	}
	var got []string
	for rec, err := range ingest.Documents("table", iter.Seq2[ingest.Document, error](docs), ingest.DecodeReference) {
		if err != nil {
			got = append(got, err.Error())
			continue
		}
		got = append(got, rec.File+"|"+rec.Key+"|"+rec.Ref.TenantID+"|"+rec.Ref.ConversationID)
	}
	want := []string{
		"table|_t-9_a:1|t-9|a:17I0kl",
		"table:row2: malformed JSON: unexpected end of JSON input",
		`table:row3: service URL "ftp://smba.trafficmanager.net/amer/" is not an absolute https URL`,
		"table:4: not valid UTF-8 (save the file as UTF-8)",
		"table gone",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Documents yielded\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A decoder may return several references from one document.
	two := func(doc ingest.Document) ([]blockreport.Reference, error) {
		refs, err := ingest.DecodeReference(doc)
		if err != nil {
			return nil, err
		}
		other := refs[0]
		other.ConversationID = "a:2"
		return append(refs, other), nil
	}
	one := func(yield func(ingest.Document, error) bool) {
		yield(ingest.Document{Key: "k", Raw: []byte(personal)}, nil)
	}
	n := 0
	for _, err := range ingest.Documents("t", one, two) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d records from a document holding two", n)
	}
}
