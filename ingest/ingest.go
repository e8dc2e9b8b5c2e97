package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	blockreport "github.com/blockreport/blockreport"
)

// Format is the layout of an input file.
type Format string

// The formats Parse reads.
const (
	// FormatAuto detects the format from the content.
	FormatAuto Format = "auto"
	// FormatConversationReference is a JSON array or JSON Lines of Bot
	// Framework ConversationReference objects.
	FormatConversationReference Format = "conversationreference"
	// FormatTeamsFx is the TeamsFx notification store
	// (.notification.localstore.json): one object whose keys are
	// "_<tenantId>_<conversationId>" and whose values are references.
	FormatTeamsFx Format = "teamsfx"
	// FormatCSV is CSV with a header row naming the columns (see Columns).
	FormatCSV Format = "csv"
)

// Valid reports whether f is a known format.
func (f Format) Valid() bool {
	switch f {
	case FormatAuto, FormatConversationReference, FormatTeamsFx, FormatCSV:
		return true
	}
	return false
}

// Problem is a record (or a whole file, Line 0) that cannot be imported.
type Problem struct {
	File   string
	Line   int
	Reason string
}

// String returns "FILE:LINE: reason" ("FILE: reason" without a line).
func (p Problem) String() string {
	if p.Line <= 0 {
		return p.File + ": " + p.Reason
	}
	return p.File + ":" + strconv.Itoa(p.Line) + ": " + p.Reason
}

// Error is String, so that a Problem can be returned as an error.
func (p Problem) Error() string { return p.String() }

// Record is one reference read from a file, with where it came from.
type Record struct {
	File string
	Line int
	Ref  blockreport.Reference
}

// Parse reads one input in the given format. name is used in Problems.
// Records that cannot be read or fail Validate become Problems, not
// errors; err is only for I/O failures. The whole input is read into
// memory, so lines of any length are fine.
func Parse(r io.Reader, name string, format Format) (records []Record, problems []Problem, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	p := &parser{name: name, data: data}
	p.parse(format)
	return p.records, p.problems, nil
}

// parser holds the state of one Parse.
type parser struct {
	name     string
	data     []byte
	records  []Record
	problems []Problem
	// line counting: lines up to lineOff are counted in line.
	lineOff, line int
}

var bom = []byte("\xef\xbb\xbf")

func (p *parser) parse(format Format) {
	p.data = bytes.TrimPrefix(p.data, bom)
	p.line = 1
	if !utf8.Valid(p.data) {
		p.problem(p.lineAt(invalidUTF8At(p.data)), "not valid UTF-8 (save the file as UTF-8)")
		return
	}
	if len(bytes.TrimSpace(p.data)) == 0 {
		p.problem(0, "empty file")
		return
	}
	if format == FormatAuto {
		format = detect(p.data)
	}
	switch format {
	case FormatConversationReference:
		p.parseReferences()
	case FormatTeamsFx:
		p.parseTeamsFx()
	case FormatCSV:
		p.parseCSV()
	default:
		p.problem(0, fmt.Sprintf("unknown format %q", format))
	}
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// lineAt returns the 1-based line of byte offset off. Offsets must not
// decrease between calls (except that smaller ones restart the count).
func (p *parser) lineAt(off int) int {
	off = min(off, len(p.data))
	if off < p.lineOff {
		p.lineOff, p.line = 0, 1
	}
	p.line += bytes.Count(p.data[p.lineOff:off], []byte{'\n'})
	p.lineOff = off
	return p.line
}

func (p *parser) problem(line int, reason string) {
	p.problems = append(p.problems, Problem{File: p.name, Line: line, Reason: reason})
}

// add validates ref and keeps it as a record or a problem.
func (p *parser) add(line int, ref blockreport.Reference) {
	if err := Validate(ref); err != nil {
		p.problem(line, err.Error())
		return
	}
	p.records = append(p.records, Record{File: p.name, Line: line, Ref: ref})
}

// detect guesses the format of data (valid UTF-8, not blank).
func detect(data []byte) Format {
	s := bytes.TrimLeft(data, " \t\r\n")
	switch s[0] {
	case '[':
		return FormatConversationReference
	case '{':
		var first map[string]json.RawMessage
		if err := json.NewDecoder(bytes.NewReader(s)).Decode(&first); err != nil {
			return FormatConversationReference // reports the bad JSON
		}
		if looksLikeReference(first) {
			return FormatConversationReference
		}
		for k := range first {
			if strings.HasPrefix(k, "_") {
				return FormatTeamsFx
			}
		}
		return FormatConversationReference
	}
	return FormatCSV
}

func looksLikeReference(m map[string]json.RawMessage) bool {
	for _, k := range []string{"conversation", "serviceUrl", "bot", "user", "channelId"} {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// skipSpace returns the offset of the first byte at or after off that is
// not JSON white space or one of extra.
func (p *parser) skipSpace(off int, extra string) int {
	for off < len(p.data) {
		c := p.data[off]
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' && !strings.ContainsRune(extra, rune(c)) {
			break
		}
		off++
	}
	return off
}

// syntaxProblem reports a JSON syntax error of the value starting at base.
func (p *parser) syntaxProblem(base int, err error) {
	off := base
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// The bad byte is at or just before Offset: the same line either
		// way, as lineAt counts the newlines before its offset.
		off = base + int(se.Offset)
	} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		off = len(p.data)
	}
	p.problem(p.lineAt(off), "malformed JSON: "+jsonReason(err))
}

// jsonReason makes a JSON error readable without the "json: " prefix
// noise.
func jsonReason(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// parseReferences reads a JSON array of references, JSON Lines, or
// references one after another spread over several lines.
func (p *parser) parseReferences() {
	start := p.skipSpace(0, "")
	if p.data[start] == '[' {
		p.parseArray(start)
		return
	}
	if p.isJSONLines(start) {
		p.parseLines()
		return
	}
	p.parseStream(start)
}

// isJSONLines reports whether the input is one value per line: its first
// non-blank line is a whole object ("{...}"). A pretty-printed reference
// starts with a line that is just "{".
func (p *parser) isJSONLines(off int) bool {
	first := p.data[off:]
	if i := bytes.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	first = bytes.TrimSpace(first)
	return len(first) >= 2 && first[0] == '{' && first[len(first)-1] == '}'
}

func (p *parser) parseLines() {
	rest := p.data
	for n := 1; len(rest) > 0; n++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		p.reference(n, line, "")
	}
}

// parseArray reads a JSON array starting at off. A syntax error stops the
// file: nothing after it can be trusted.
func (p *parser) parseArray(off int) {
	dec := json.NewDecoder(bytes.NewReader(p.data[off:]))
	if _, err := dec.Token(); err != nil {
		p.syntaxProblem(off, err)
		return
	}
	for dec.More() {
		start := p.skipSpace(off+int(dec.InputOffset()), ",")
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			p.syntaxProblem(off, err)
			return
		}
		p.reference(p.lineAt(start), v, "")
	}
	if _, err := dec.Token(); err != nil {
		p.syntaxProblem(off, err)
		return
	}
	p.trailing(off + int(dec.InputOffset()))
}

// parseStream reads JSON values one after another (pretty-printed
// references).
func (p *parser) parseStream(off int) {
	dec := json.NewDecoder(bytes.NewReader(p.data[off:]))
	for {
		start := p.skipSpace(off+int(dec.InputOffset()), "")
		if start >= len(p.data) {
			return
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			p.syntaxProblem(off, err)
			return
		}
		p.reference(p.lineAt(start), v, "")
	}
}

// trailing reports anything but white space after the end of the document.
func (p *parser) trailing(off int) {
	if off = p.skipSpace(off, ""); off < len(p.data) {
		p.problem(p.lineAt(off), "malformed JSON: unexpected data after the end of the document")
	}
}

// parseTeamsFx reads the TeamsFx notification store: one object keyed
// "_<tenantId>_<conversationId>".
func (p *parser) parseTeamsFx() {
	off := p.skipSpace(0, "")
	dec := json.NewDecoder(bytes.NewReader(p.data[off:]))
	tok, err := dec.Token()
	if err != nil {
		p.syntaxProblem(off, err)
		return
	}
	if tok != json.Delim('{') {
		p.problem(p.lineAt(off), "not a TeamsFx notification store: want one JSON object keyed _<tenantId>_<conversationId>")
		return
	}
	for dec.More() {
		start := p.skipSpace(off+int(dec.InputOffset()), ",")
		tok, err := dec.Token()
		if err != nil {
			p.syntaxProblem(off, err)
			return
		}
		key, _ := tok.(string) // object keys are always strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			p.syntaxProblem(off, err)
			return
		}
		p.reference(p.lineAt(start), v, key)
	}
	if _, err := dec.Token(); err != nil {
		p.syntaxProblem(off, err)
		return
	}
	p.trailing(off + int(dec.InputOffset()))
}

// reference converts one JSON reference; key is its TeamsFx key, if any.
func (p *parser) reference(line int, raw []byte, key string) {
	ref, err := fromJSON(raw, key)
	if err != nil {
		p.problem(line, err.Error())
		return
	}
	p.add(line, ref)
}
