package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
)

// element is one top-level record of a store document: a member of a JSON
// object that maps keys to records (a FileStorage state.json, a botbuilder
// dump), an element of an array (a Cosmos DB or table export), one line of
// JSON Lines, or the document itself (one blob body).
type element struct {
	Key  string // the member's key; "" for array elements and whole documents
	Line int    // line where the record starts
	Raw  json.RawMessage
}

// lineReader counts the newlines of what a json.Decoder reads, so that an
// element's offset can be turned into its line without keeping the input.
type lineReader struct {
	r    io.Reader
	read int64   // bytes delivered so far
	nl   []int64 // offsets of delivered newlines not yet passed by lineAt
	line int     // newlines before the last lineAt offset
}

func (l *lineReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i, c := range p[:n] {
		if c == '\n' {
			l.nl = append(l.nl, l.read+int64(i))
		}
	}
	l.read += int64(n)
	return n, err
}

// lineAt returns the 1-based line of offset off; offsets must not decrease.
func (l *lineReader) lineAt(off int64) int {
	for len(l.nl) > 0 && l.nl[0] < off {
		l.nl = l.nl[1:]
		l.line++
	}
	return l.line + 1
}

// recordFields are member names (compared without case) that only a record
// has, never a key of a store dump: a document whose first member is one
// of them is a single record, not a map of records.
var recordFields = map[string]bool{
	"reference": true, "claims": true, "$type": true, "$typeassembly": true, "__link": true,
	"activityid": true, "user": true, "bot": true, "agent": true, "conversation": true, "channelid": true,
	"serviceurl": true, "locale": true, "id": true, "realid": true, "document": true, "_etag": true, "etag": true,
	"partitionkey": true, "rowkey": true, "timestamp": true, "odata.etag": true, "odata.metadata": true,
	"aadid": true, "userid": true, "conversationid": true, "tenantid": true, "aadobjectid": true,
	"conversationtype": true, "usertype": true, "name": true, "email": true, "upn": true, "teamid": true,
	"_rid": true, "_self": true, "_ts": true, "_attachments": true, "value": true, "items": true,
}

// listFields name the member holding the records of a listing answer:
// Table REST's {"value":[...]}, az CLI's {"items":[...]}, a Cosmos query's
// {"Documents":[...]}.
var listFields = map[string]bool{"value": true, "items": true, "documents": true}

// elements yields the records of one JSON document, streaming: it holds one
// record at a time, not the document. A syntax error ends the document
// (nothing after it can be trusted) and is yielded with the line it is on.
func elements(r io.Reader) iter.Seq2[element, error] {
	return func(yield func(element, error) bool) {
		br := bufio.NewReader(r)
		if b, _ := br.Peek(3); bytes.Equal(b, bom) {
			br.Discard(3)
		}
		lr := &lineReader{r: br}
		dec := json.NewDecoder(lr)
		e := elementScanner{dec: dec, lr: lr, yield: yield}
		e.document()
	}
}

type elementScanner struct {
	dec   *json.Decoder
	lr    *lineReader
	yield func(element, error) bool
	stop  bool
}

// next returns the line where the next value starts: after the white
// space, commas and colons still buffered in the decoder.
func (e *elementScanner) next() int {
	off := e.dec.InputOffset()
	rest, _ := io.ReadAll(e.dec.Buffered()) // a view of the buffer: nothing is consumed
	for _, c := range rest {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != ',' && c != ':' {
			break
		}
		off++
	}
	return e.lr.lineAt(off)
}

func (e *elementScanner) emit(el element) {
	if !e.stop && !e.yield(el, nil) {
		e.stop = true
	}
}

// fail yields a syntax error at the line it is on and stops.
func (e *elementScanner) fail(err error) {
	if e.stop {
		return
	}
	e.stop = true
	var re readError
	if errors.As(err, &re) {
		e.yield(element{}, re)
		return
	}
	line := e.lr.lineAt(e.dec.InputOffset())
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line = e.lr.lineAt(se.Offset)
	}
	e.yield(element{Line: line}, fmt.Errorf("malformed JSON: %s", jsonReason(err)))
}

func (e *elementScanner) document() {
	first := true
	for !e.stop {
		line := e.next()
		tok, err := e.dec.Token()
		if err == io.EOF {
			if first {
				e.yield(element{Line: 0}, errors.New("empty document"))
			}
			return
		}
		if err != nil {
			e.fail(err)
			return
		}
		switch tok {
		case json.Delim('['):
			e.array()
		case json.Delim('{'):
			e.object(line)
		default:
			e.yield(element{Line: line}, fmt.Errorf("not a store record: want a JSON object or array, got %s", tokenKind(tok)))
			e.stop = true
			return
		}
		first = false
	}
}

func tokenKind(tok json.Token) string {
	switch tok.(type) {
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

// array yields each element of an array whose '[' was read.
func (e *elementScanner) array() {
	for !e.stop && e.dec.More() {
		line := e.next()
		var raw json.RawMessage
		if err := e.dec.Decode(&raw); err != nil {
			e.fail(err)
			return
		}
		e.emit(element{Line: line, Raw: raw})
	}
	if e.stop {
		return
	}
	if _, err := e.dec.Token(); err != nil {
		e.fail(err)
	}
}

// object reads an object whose '{' was read at line: either one record
// (its first member is a record field), a listing answer, or a map of
// keys to records.
func (e *elementScanner) object(line int) {
	if !e.dec.More() {
		e.dec.Token() // the closing brace
		e.emit(element{Line: line, Raw: json.RawMessage("{}")})
		return
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	single, listed := false, false
	for n := 0; !e.stop && e.dec.More(); n++ {
		memberLine := e.next()
		tok, err := e.dec.Token()
		if err != nil {
			e.fail(err)
			return
		}
		key, _ := tok.(string)
		lower := strings.ToLower(key)
		if n == 0 {
			single = recordFields[lower]
		}
		if single && listFields[lower] {
			// Peek: a listing answer's records are an array.
			if t, err := e.dec.Token(); err == nil && t == json.Delim('[') {
				listed = true
				e.array()
				continue
			} else if err != nil {
				e.fail(err)
				return
			} else {
				// A scalar or object named value: part of the record.
				raw, err := rawFromToken(e.dec, t)
				if err != nil {
					e.fail(err)
					return
				}
				appendMember(&buf, key, raw)
				continue
			}
		}
		var raw json.RawMessage
		if err := e.dec.Decode(&raw); err != nil {
			e.fail(err)
			return
		}
		if n == 0 && !single && !isObject(raw) {
			// A map's values are records (objects): this is one record
			// with a field of its own first.
			single = true
		}
		if single {
			appendMember(&buf, key, raw)
			continue
		}
		e.emit(element{Key: key, Line: memberLine, Raw: raw})
	}
	if e.stop {
		return
	}
	if _, err := e.dec.Token(); err != nil {
		e.fail(err)
		return
	}
	if single && !listed && buf.Len() > 1 {
		buf.WriteByte('}')
		e.emit(element{Line: line, Raw: buf.Bytes()})
	}
}

func appendMember(buf *bytes.Buffer, key string, raw []byte) {
	if buf.Len() > 1 {
		buf.WriteByte(',')
	}
	k, _ := json.Marshal(key)
	buf.Write(k)
	buf.WriteByte(':')
	buf.Write(raw)
}

// rawFromToken re-encodes a value whose first token t was already read.
func rawFromToken(dec *json.Decoder, t json.Token) (json.RawMessage, error) {
	if d, ok := t.(json.Delim); ok {
		var buf bytes.Buffer
		buf.WriteString(d.String())
		closer := map[json.Delim]string{'{': "}", '[': "]"}[d]
		for dec.More() {
			if buf.Len() > 1 {
				buf.WriteByte(',')
			}
			if d == '{' {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				kb, _ := json.Marshal(k)
				buf.Write(kb)
				buf.WriteByte(':')
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, err
			}
			buf.Write(raw)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		buf.WriteString(closer)
		return buf.Bytes(), nil
	}
	return json.Marshal(t)
}

func isObject(raw []byte) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}
