package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"unicode/utf8"

	blockreport "github.com/blockreport/blockreport"
)

// Format is the layout of an input file.
type Format string

// The formats Read reads.
const (
	// FormatAuto detects the format from the first PrefixSize bytes.
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

// PrefixSize is how many bytes of an input FormatAuto looks at.
const PrefixSize = 64 << 10

// Problem is a record (or a whole input, Line 0) that cannot be imported.
// File names the input (a file, "-", a blob, a table); Line is 1-based
// where the input has lines; Key is the record's key in a keyed source
// (a TeamsFx key, an Azure table row), "" otherwise.
type Problem struct {
	File   string
	Line   int
	Key    string
	Reason string
}

// String returns "FILE:LINE: reason", "FILE:KEY: reason" for a keyed
// record without a line, or "FILE: reason".
func (p Problem) String() string {
	switch {
	case p.Line > 0:
		return p.File + ":" + strconv.Itoa(p.Line) + ": " + p.Reason
	case p.Key != "":
		return p.File + ":" + p.Key + ": " + p.Reason
	}
	return p.File + ": " + p.Reason
}

// Error is String, so that a Problem can be returned as an error.
func (p Problem) Error() string { return p.String() }

// Record is one reference read from an input, with where it came from.
type Record struct {
	File string
	Line int
	Key  string // the record's key in a keyed source, or ""
	Ref  blockreport.Reference
}

// Read streams the records of one input in the given format; name is used
// in Records and Problems. It reads the input once, holding one record at a
// time (plus the reader's buffer), so inputs of any size and lines of any
// length are fine.
//
// Each step yields either a Record whose reference passed Validate, or an
// error: a Problem for a record (or the whole input) that cannot be
// imported, after which reading goes on where that still makes sense, or
// any other error for a failure to read, after which the sequence ends.
// Breaking out of the loop stops reading.
//
//	for rec, err := range ingest.Read(f, name, ingest.FormatAuto) {
//		var p ingest.Problem
//		switch {
//		case errors.As(err, &p): // list it, go on
//		case err != nil: // I/O error: stop
//		default: // use rec
//		}
//	}
//
// # Adding a source or a format
//
// A source of whole inputs (a file, standard input, an Azure blob) passes
// each body to Read with a name that locates it ("container/blob.json").
// A source of separate documents (an Azure table's rows) yields them as a
// sequence of Document and passes it to Documents with a Decoder
// (DecodeReference for ConversationReference JSON). A new format of
// documents is a Decoder in its own file; a new container format is a
// Format constant, a branch in (*parser).run and, for FormatAuto, a rule in
// detect, which sees only the first PrefixSize bytes. Either way the records
// reach the store through the same loop as files (store.Import), with the
// same validation, chunking, transaction and problem listing.
func Read(r io.Reader, name string, format Format) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		p := &parser{name: name, yield: yield}
		p.run(r, format)
	}
}

// ReadFor is Read for the bot whose app id is appID (--app-id): a record
// bound to another bot (bot.id, with or without "28:") is a Problem, with
// the reason DecodeStore gives for Defaults.AppID. An empty appID accepts
// every bot, as Read does.
func ReadFor(r io.Reader, name string, format Format, appID string) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		p := &parser{name: name, yield: yield, appID: appID}
		p.run(r, format)
	}
}

// Parse reads one whole input with Read and returns its records and
// problems; err is only for I/O failures. It holds every record: Read is
// the way to import large inputs.
func Parse(r io.Reader, name string, format Format) (records []Record, problems []Problem, err error) {
	for rec, e := range Read(r, name, format) {
		var p Problem
		switch {
		case errors.As(e, &p):
			problems = append(problems, p)
		case e != nil:
			return records, problems, e
		default:
			records = append(records, rec)
		}
	}
	return records, problems, nil
}

// Document is one JSON document of a keyed source, such as an Azure table
// row or a blob holding one reference.
type Document struct {
	Key  string // "" if the source has no keys
	Line int    // 1-based position in the source, 0 if none
	Raw  []byte
}

// A Decoder turns one document into the references it holds (usually one),
// or fails with a reason that names what is wrong (it becomes a Problem).
// Decoders do not validate: Documents does.
type Decoder func(doc Document) ([]blockreport.Reference, error)

// DecodeReference is the Decoder of one Bot Framework ConversationReference
// JSON object; a TeamsFx key ("_<tenantId>_<conversationId>") fills in a
// missing tenant or conversation id.
func DecodeReference(doc Document) ([]blockreport.Reference, error) {
	ref, err := fromJSON(doc.Raw, doc.Key)
	if err != nil {
		return nil, err
	}
	return []blockreport.Reference{ref}, nil
}

// Documents streams the records decoded from docs, a source named name
// whose documents each hold references: each reference is validated, and a
// document that does not decode or a reference that fails Validate is a
// Problem. An error from docs is passed on as it is (a Problem stays a
// Problem; any other error ends the sequence).
func Documents(name string, docs iter.Seq2[Document, error], decode Decoder) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for doc, err := range docs {
			if err != nil {
				var p Problem
				if !yield(Record{}, err) || !errors.As(err, &p) {
					return
				}
				continue
			}
			problem := func(reason string) bool {
				return yield(Record{}, Problem{File: name, Line: doc.Line, Key: doc.Key, Reason: reason})
			}
			if !utf8.Valid(doc.Raw) {
				if !problem(notUTF8) {
					return
				}
				continue
			}
			refs, err := decode(doc)
			if err != nil {
				if !problem(err.Error()) {
					return
				}
				continue
			}
			for _, ref := range refs {
				if err := Validate(ref); err != nil {
					if !problem(err.Error()) {
						return
					}
					continue
				}
				if !yield(Record{File: name, Line: doc.Line, Key: doc.Key, Ref: ref}, nil) {
					return
				}
			}
		}
	}
}

const notUTF8 = "not valid UTF-8 (save the file as UTF-8)"

// parser holds the state of one Read.
type parser struct {
	name    string
	appID   string // ReadFor's: references bound to another bot are problems
	yield   func(Record, error) bool
	stopped bool // the consumer broke out of the loop, or reading failed
	br      *bufio.Reader
	lines   *lineTracker
	base    int // lines skipped before the format's own reading started
}

var bom = []byte("\xef\xbb\xbf")

// ioError is a read failure of the underlying reader, as opposed to bad
// content; it ends the sequence.
type ioError struct{ err error }

func (e ioError) Error() string { return e.err.Error() }
func (e ioError) Unwrap() error { return e.err }

func (p *parser) run(r io.Reader, format Format) {
	p.lines = &lineTracker{r: &failReader{r: r}}
	p.br = bufio.NewReaderSize(p.lines, PrefixSize)
	if b, _ := p.br.Peek(len(bom)); bytes.Equal(b, bom) {
		_, _ = p.br.Discard(len(bom))
	}
	// Skip leading white space, counting its lines.
	for {
		c, err := p.br.ReadByte()
		if err != nil {
			if !p.ioFailed(err) {
				p.problem(0, "empty file")
			}
			return
		}
		if c == '\n' {
			p.base++
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			_ = p.br.UnreadByte()
			break
		}
	}
	if format == FormatAuto {
		// A read error here comes again on the next read, after the
		// records before it.
		prefix, _ := p.br.Peek(PrefixSize)
		format = detect(prefix)
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

// ioFailed reports (once) whether err is a read failure rather than the
// end of the input or bad content; it yields the failure.
func (p *parser) ioFailed(err error) bool {
	var ie ioError
	if !errors.As(err, &ie) {
		return false
	}
	if !p.stopped {
		p.stopped = true
		p.yield(Record{}, fmt.Errorf("read %s: %w", p.name, ie.err))
	}
	return true
}

// failReader marks the errors of the underlying reader (other than EOF) as
// ioError, so that they are not mistaken for bad content, and keeps
// returning the first one.
type failReader struct {
	r   io.Reader
	err error
}

func (f *failReader) Read(b []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.r.Read(b)
	if err != nil && err != io.EOF {
		err = ioError{err}
		f.err = err
	}
	return n, err
}

// lineTracker counts lines by byte offset over a stream: it notes where
// the newlines are in what it has read, and lineAt turns an offset into a
// line, forgetting the newlines before it. Offsets passed to lineAt must
// not decrease; what it holds is bounded by what readers have buffered.
type lineTracker struct {
	r        io.Reader
	off      bool    // stopped: the format counts its own lines
	read     int64   // bytes read so far
	newlines []int64 // offsets of newlines not yet counted
	line     int     // lines counted so far (1-based line of the offset last asked for)
}

func (t *lineTracker) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	for i := 0; !t.off && i < n; i++ {
		if b[i] == '\n' {
			t.newlines = append(t.newlines, t.read+int64(i))
		}
	}
	t.read += int64(n)
	return n, err
}

// lineAt returns the number of newlines before offset off, plus one.
func (t *lineTracker) lineAt(off int64) int {
	i := 0
	for i < len(t.newlines) && t.newlines[i] < off {
		i++
	}
	t.line += i
	t.newlines = t.newlines[:copy(t.newlines, t.newlines[i:])]
	return t.line + 1
}

// offset is the offset in the tracked stream of what the bufio reader
// returns next.
func (p *parser) offset() int64 { return p.lines.read - int64(p.br.Buffered()) }

func (p *parser) problem(line int, reason string) {
	p.problemKey(line, "", reason)
}

func (p *parser) problemKey(line int, key, reason string) {
	if p.stopped {
		return
	}
	if !p.yield(Record{}, Problem{File: p.name, Line: line, Key: key, Reason: reason}) {
		p.stopped = true
	}
}

// add validates ref and yields it as a record or a problem.
func (p *parser) add(line int, key string, ref blockreport.Reference) {
	if p.stopped {
		return
	}
	if reason := otherBot(ref.BotID, p.appID); reason != "" {
		p.problemKey(line, key, reason)
		return
	}
	if err := Validate(ref); err != nil {
		p.problemKey(line, key, err.Error())
		return
	}
	if !p.yield(Record{File: p.name, Line: line, Key: key, Ref: ref}, nil) {
		p.stopped = true
	}
}

// detect guesses the format from prefix, the first bytes of the input after
// white space (not blank). An object whose first keys include a reference's
// fields is a reference; one whose keys start with "_" is the TeamsFx
// store.
func detect(prefix []byte) Format {
	switch prefix[0] {
	case '[':
		return FormatConversationReference
	case '{':
		dec := json.NewDecoder(bytes.NewReader(prefix))
		if _, err := dec.Token(); err != nil {
			return FormatConversationReference // reports the bad JSON
		}
		underscore := false
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			k, _ := tok.(string)
			if isReferenceField(k) {
				return FormatConversationReference
			}
			underscore = underscore || strings.HasPrefix(k, "_")
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				break // cut by the prefix, or bad JSON
			}
		}
		if underscore {
			return FormatTeamsFx
		}
		return FormatConversationReference
	}
	return FormatCSV
}

func isReferenceField(k string) bool {
	switch k {
	case "conversation", "serviceUrl", "bot", "user", "channelId":
		return true
	}
	return false
}

// syntaxProblem reports a JSON syntax error of the decoder whose input
// started at base.
func (p *parser) syntaxProblem(base int64, err error) {
	if p.ioFailed(err) {
		return
	}
	off := p.lines.read
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// The bad byte is at or just before Offset: the same line either
		// way, as lineAt counts the newlines before its offset.
		off = base + se.Offset
	}
	p.problem(p.lines.lineAt(off), "malformed JSON: "+jsonReason(err))
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
	if c, _ := p.br.Peek(1); len(c) == 1 && c[0] == '[' {
		p.parseArray()
		return
	}
	if p.isJSONLines() {
		p.parseLines()
		return
	}
	p.parseStream()
}

// isJSONLines reports whether the input is one value per line: its first
// non-blank line is a whole object ("{...}"). A pretty-printed reference
// starts with a line that is just "{".
func (p *parser) isJSONLines() bool {
	first, _ := p.br.Peek(PrefixSize)
	i := bytes.IndexByte(first, '\n')
	if i < 0 {
		return false // one value, or a first line longer than the prefix: read as a stream
	}
	first = bytes.TrimSpace(first[:i])
	return len(first) >= 2 && first[0] == '{' && first[len(first)-1] == '}'
}

func (p *parser) parseLines() {
	p.lines.off, p.lines.newlines = true, nil
	var buf []byte
	for n := p.base + 1; !p.stopped; n++ {
		line, err := p.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: gather it.
			buf = append(buf[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = p.br.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		}
		if err != nil && err != io.EOF {
			p.ioFailed(err)
			return
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			if !utf8.Valid(t) {
				p.problem(n, notUTF8)
			} else {
				p.reference(n, "", bytes.Clone(t))
			}
		}
		if err == io.EOF {
			return
		}
		if len(buf) > 1<<20 {
			buf = nil // do not keep a huge line's buffer
		}
	}
}

// valueStart returns the offset of the next value of dec, whose input
// started at base: InputOffset, past white space and the separators in
// extra that are still in the decoder's buffer.
func valueStart(dec *json.Decoder, base int64, extra string) int64 {
	off := base + dec.InputOffset()
	var b [1]byte
	r := dec.Buffered()
	for {
		if n, _ := r.Read(b[:]); n == 0 {
			return off
		}
		c := b[0]
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' && !strings.ContainsRune(extra, rune(c)) {
			return off
		}
		off++
	}
}

// decoder returns a JSON decoder reading the rest of the input, and the
// offset where its input starts.
func (p *parser) decoder() (*json.Decoder, int64) {
	return json.NewDecoder(p.br), p.offset()
}

// parseArray reads a JSON array. A syntax error stops the input: nothing
// after it can be trusted.
func (p *parser) parseArray() {
	dec, base := p.decoder()
	if _, err := dec.Token(); err != nil {
		p.syntaxProblem(base, err)
		return
	}
	for dec.More() && !p.stopped {
		start := valueStart(dec, base, ",")
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			p.syntaxProblem(base, err)
			return
		}
		p.jsonValue(p.lines.lineAt(start), "", v)
	}
	if p.stopped {
		return
	}
	if _, err := dec.Token(); err != nil {
		p.syntaxProblem(base, err)
		return
	}
	p.trailing(dec, base)
}

// parseStream reads JSON values one after another (pretty-printed
// references).
func (p *parser) parseStream() {
	dec, base := p.decoder()
	for !p.stopped {
		start := valueStart(dec, base, "")
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			if err == io.EOF {
				return
			}
			p.syntaxProblem(base, err)
			return
		}
		p.jsonValue(p.lines.lineAt(start), "", v)
	}
}

// trailing reports anything but white space after the end of the document.
func (p *parser) trailing(dec *json.Decoder, base int64) {
	rest := io.MultiReader(dec.Buffered(), p.br)
	off := base + dec.InputOffset()
	var b [1]byte
	for {
		n, err := rest.Read(b[:])
		if n == 1 {
			if c := b[0]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				p.problem(p.lines.lineAt(off), "malformed JSON: unexpected data after the end of the document")
				return
			}
			off++
		}
		if err != nil {
			p.ioFailed(err)
			return
		}
	}
}

// parseTeamsFx reads the TeamsFx notification store: one object keyed
// "_<tenantId>_<conversationId>".
func (p *parser) parseTeamsFx() {
	dec, base := p.decoder()
	start := base
	tok, err := dec.Token()
	if err != nil {
		p.syntaxProblem(base, err)
		return
	}
	if tok != json.Delim('{') {
		p.problem(p.lines.lineAt(start), "not a TeamsFx notification store: want one JSON object keyed _<tenantId>_<conversationId>")
		return
	}
	for dec.More() && !p.stopped {
		start := valueStart(dec, base, ",")
		tok, err := dec.Token()
		if err != nil {
			p.syntaxProblem(base, err)
			return
		}
		key, _ := tok.(string) // object keys are always strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			p.syntaxProblem(base, err)
			return
		}
		p.jsonValue(p.lines.lineAt(start), key, v)
	}
	if p.stopped {
		return
	}
	if _, err := dec.Token(); err != nil {
		p.syntaxProblem(base, err)
		return
	}
	p.trailing(dec, base)
}

// jsonValue converts one JSON value read by a decoder (which does not
// check UTF-8 inside strings).
func (p *parser) jsonValue(line int, key string, raw []byte) {
	if !utf8.Valid(raw) {
		p.problemKey(line, key, notUTF8)
		return
	}
	p.reference(line, key, raw)
}

// reference converts one JSON reference; key is its TeamsFx key, if any.
func (p *parser) reference(line int, key string, raw []byte) {
	ref, err := fromJSON(raw, key)
	if err != nil {
		p.problemKey(line, key, err.Error())
		return
	}
	p.add(line, key, ref)
}
