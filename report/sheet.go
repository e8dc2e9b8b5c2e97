package report

import (
	"bufio"
	"compress/flate"
	"encoding/xml"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	blockreport "github.com/blockreport/blockreport"
)

// This file writes the list sheets (one row per conversation) as
// SpreadsheetML of its own, streamed: a million rows never pass through
// excelize, whose stream writer buffers and whose File.Write builds the
// whole zip in memory. Cells carry no reference (they follow each other, an
// empty one is <c/>), values that repeat on every row (status, reason,
// tenant, scope, service URL, ...) are shared strings, unique text is an
// inline string, and the only styles are the header's and the dates'.

// listColumn is one column of the list sheets: its header, its width in
// characters and how a row fills it. Adding a column is one line in
// listColumns; the export (Columns, ExportColumns) follows.
type listColumn struct {
	header string
	width  float64
	kind   cellKind
	text   func(*blockreport.Row) string          // kindText, kindShared
	num    func(*blockreport.Row) (float64, bool) // kindNumber
	date   func(*blockreport.Row) time.Time       // kindDate
}

type cellKind int

const (
	kindText   cellKind = iota // unique per row: an inline string
	kindShared                 // few distinct values: a shared string
	kindNumber
	kindDate // a date-time number with the date style
)

func textCol(h string, w float64, f func(*blockreport.Row) string) listColumn {
	return listColumn{header: h, width: w, kind: kindText, text: f}
}

func sharedCol(h string, w float64, f func(*blockreport.Row) string) listColumn {
	return listColumn{header: h, width: w, kind: kindShared, text: f}
}

func intCol(h string, w float64, f func(*blockreport.Row) int) listColumn {
	return listColumn{header: h, width: w, kind: kindNumber, num: func(r *blockreport.Row) (float64, bool) {
		v := f(r)
		return float64(v), v != 0
	}}
}

func dateCol(h string, w float64, f func(*blockreport.Row) time.Time) listColumn {
	return listColumn{header: h, width: w, kind: kindDate, date: f}
}

// listColumns are the columns of every list sheet, in order.
var listColumns = []listColumn{
	sharedCol("Status", 14, func(r *blockreport.Row) string { return r.Status.Label() }),
	sharedCol("Reason", 28, func(r *blockreport.Row) string { return Reason(*r) }),
	textCol("User name", 26, func(r *blockreport.Row) string { return r.UserName }),
	textCol("Email", 30, func(r *blockreport.Row) string { return r.Email }),
	textCol("AAD object ID", 38, func(r *blockreport.Row) string { return r.AADObjectID }),
	textCol("Teams user ID", 30, func(r *blockreport.Row) string { return r.UserID }),
	sharedCol("Tenant ID", 38, func(r *blockreport.Row) string { return r.TenantID }),
	sharedCol("Scope", 15, func(r *blockreport.Row) string { return string(scopeOf(r.ConversationType)) }),
	textCol("Conversation ID", 44, func(r *blockreport.Row) string { return r.ConversationID }),
	intCol("HTTP status", 11, func(r *blockreport.Row) int { return r.HTTPStatus }),
	dateCol("Probed at", 19, func(r *blockreport.Row) time.Time { return r.ProbedAt }),
	dateCol("Status since", 19, func(r *blockreport.Row) time.Time { return r.StatusSince }),
	sharedCol("Previous status", 15, func(r *blockreport.Row) string { return previousLabel(r.PreviousStatus) }),
	sharedCol("Detail", 40, func(r *blockreport.Row) string { return r.Detail }),
	textCol("Team ID", 36, func(r *blockreport.Row) string { return r.TeamID }),
	sharedCol("Service URL", 40, func(r *blockreport.Row) string { return r.ServiceURL }),
	// Microsoft Graph's (empty when the run did not use it).
	sharedCol("Tenant name", 24, func(r *blockreport.Row) string { return r.TenantName }),
	sharedCol("Department", 18, func(r *blockreport.Row) string { return r.Department }),
	sharedCol("Job title", 18, func(r *blockreport.Row) string { return r.JobTitle }),
	textCol("UPN", 30, func(r *blockreport.Row) string { return r.UPN }),
	sharedCol("Account", 16, func(r *blockreport.Row) string { return r.Account }),
	sharedCol("Installed (Graph)", 11, func(r *blockreport.Row) string { return installedLabel(*r) }),
	textCol("Graph answer", 30, func(r *blockreport.Row) string { return graphAnswer(*r) }),
	// Where the reference was last imported from, to trace a row back.
	textCol("Source", 36, func(r *blockreport.Row) string { return SourceOf(r.Reference) }),
}

// SourceOf is where a reference was last imported from, as one string:
// "refs.jsonl line 1", "azblob://container/name", "aztable://T PK/RK";
// "" when the store does not know.
func SourceOf(ref blockreport.Reference) string {
	switch {
	case ref.Source == "":
		return ref.SourceKey
	case ref.SourceKey == "":
		return ref.Source
	case strings.HasPrefix(ref.Source, "azblob://"):
		return strings.TrimSuffix(ref.Source, "/") + "/" + ref.SourceKey
	default:
		return ref.Source + " " + ref.SourceKey
	}
}

func previousLabel(s blockreport.Status) string {
	if s == "" {
		return ""
	}
	return s.Label()
}

// Columns is the header row of every list sheet.
var Columns = func() []string {
	out := make([]string, len(listColumns))
	for i, c := range listColumns {
		out[i] = c.header
	}
	return out
}()

// rowValues fills v with the cells of one row, in Columns order, as the
// list sheets show them: cleaned strings, ints, and dates as excelTime
// numbers in a date-styled cell; nil for an empty cell.
func rowValues(v []any, r blockreport.Row, st styles) {
	for i, c := range listColumns {
		v[i] = nil
		switch c.kind {
		case kindText, kindShared:
			if s := c.text(&r); s != "" {
				v[i] = clean(s)
			}
		case kindNumber:
			if x, ok := c.num(&r); ok {
				v[i] = int(x)
			}
		case kindDate:
			if x := excelTime(c.date(&r)); x != nil {
				v[i] = excelize.Cell{StyleID: st.date, Value: x}
			}
		}
	}
}

// maxSharedStrings bounds the shared-string table the list sheets build:
// a "shared" column with more distinct values than that (a store with
// unusual reasons or details) writes the rest inline, so memory stays
// bounded whatever the data.
const maxSharedStrings = 1 << 16

// sharedStrings is the workbook's shared-string table: the strings
// excelize wrote for the small sheets (indices below base), then the
// list sheets' own.
type sharedStrings struct {
	base  int
	index map[string]int
	list  []string
}

func newSharedStrings(base int) *sharedStrings {
	return &sharedStrings{base: base, index: map[string]int{}}
}

// know indexes the plain strings of excelize's table (body: its <si>
// entries), so the list sheets refer to them instead of adding them again.
func (t *sharedStrings) know(body string) error {
	var sst struct {
		SI []struct {
			T    *string    `xml:"t"`
			Runs []struct{} `xml:"r"`
		} `xml:"si"`
	}
	if err := xml.Unmarshal([]byte("<sst>"+body+"</sst>"), &sst); err != nil {
		return fmt.Errorf("read %s: %w", sharedStringsPart, err)
	}
	if len(sst.SI) != t.base {
		return fmt.Errorf("read %s: %d entries, counted %d", sharedStringsPart, len(sst.SI), t.base)
	}
	for i, si := range sst.SI {
		if si.T != nil && len(si.Runs) == 0 {
			if _, ok := t.index[*si.T]; !ok {
				t.index[*si.T] = i
			}
		}
	}
	return nil
}

// id returns the index of s, adding it when there is room.
func (t *sharedStrings) id(s string) (int, bool) {
	if i, ok := t.index[s]; ok {
		return i, true
	}
	if len(t.list) >= maxSharedStrings {
		return 0, false
	}
	i := t.base + len(t.list)
	t.index[s] = i
	t.list = append(t.list, s)
	return i, true
}

// sheetWriter writes one list sheet's XML, deflated, to an underlying
// writer, keeping the CRC-32 and sizes a zip entry needs.
type sheetWriter struct {
	name  string
	rows  int // data rows written
	total int // data rows seen, written or not
	// truncated: more rows than an Excel sheet holds.
	truncated bool

	out   io.Writer     // where the deflated bytes go
	cw    countWriter   // counts compressed bytes
	fw    *flate.Writer // nil when out is already a compressing zip entry
	crc   crcHash
	raw   int64 // uncompressed bytes
	bw    *bufio.Writer
	sst   *sharedStrings
	date  int // style of date cells
	buf   []byte
	wrote bool
}

// crcHash is a running CRC-32 (hash.Hash32).
type crcHash interface {
	Write([]byte) (int, error)
	Sum32() uint32
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// tee counts and checksums the uncompressed bytes on their way to the
// compressor.
type tee struct{ s *sheetWriter }

func (t tee) Write(p []byte) (int, error) {
	t.s.crc.Write(p)
	t.s.raw += int64(len(p))
	if t.s.fw != nil {
		return t.s.fw.Write(p)
	}
	return t.s.out.Write(p)
}

// newSheetWriter starts sheet name on out. With compress, out receives a
// raw deflate stream (for zip.Writer.CreateRaw); without, out compresses
// itself (a zip entry).
func newSheetWriter(name string, out io.Writer, compress bool, sst *sharedStrings, st styles) (*sheetWriter, error) {
	s := &sheetWriter{name: name, crc: crc32.NewIEEE(), sst: sst, date: st.date}
	s.cw = countWriter{w: out}
	s.out = &s.cw
	if compress {
		fw, err := flate.NewWriter(&s.cw, flate.DefaultCompression)
		if err != nil {
			return nil, err
		}
		s.fw = fw
	}
	s.bw = bufio.NewWriterSize(tee{s}, 64<<10)
	s.bw.WriteString(xml.Header)
	s.bw.WriteString(`<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">`)
	s.bw.WriteString(`<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>`)
	s.bw.WriteString(`<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/><selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>`)
	s.bw.WriteString(`<sheetFormatPr defaultRowHeight="15"/><cols>`)
	for i, c := range listColumns {
		fmt.Fprintf(s.bw, `<col min="%d" max="%d" width="%s" customWidth="1"/>`, i+1, i+1, strconv.FormatFloat(c.width, 'f', -1, 64))
	}
	s.bw.WriteString(`</cols><sheetData><row r="1" ht="20" customHeight="1">`)
	for _, c := range listColumns {
		if i, ok := sst.id(c.header); ok {
			fmt.Fprintf(s.bw, `<c s="%d" t="s"><v>%d</v></c>`, st.header, i)
		} else {
			fmt.Fprintf(s.bw, `<c s="%d" t="inlineStr"><is><t>%s</t></is></c>`, st.header, escapeText(c.header))
		}
	}
	_, err := s.bw.WriteString(`</row>`)
	return s, err
}

// write adds one data row (or, past Excel's limit, only counts it).
func (s *sheetWriter) write(r *blockreport.Row) error {
	s.total++
	if s.rows >= maxDataRows {
		s.truncated = true
		return nil
	}
	s.rows++
	b := s.buf[:0]
	b = append(b, `<row r="`...)
	b = strconv.AppendInt(b, int64(s.rows+1), 10)
	b = append(b, `">`...)
	full := len(b) // end of the last cell with a value
	for _, c := range listColumns {
		switch c.kind {
		case kindText, kindShared:
			v := c.text(r)
			if v == "" {
				b = append(b, `<c/>`...)
				continue
			}
			v = clean(v)
			if c.kind == kindShared {
				if i, ok := s.sst.id(v); ok {
					b = append(b, `<c t="s"><v>`...)
					b = strconv.AppendInt(b, int64(i), 10)
					b = append(b, `</v></c>`...)
					full = len(b)
					continue
				}
			}
			b = append(b, `<c t="inlineStr"><is>`...)
			b = appendT(b, v)
			b = append(b, `</is></c>`...)
			full = len(b)
		case kindNumber:
			x, ok := c.num(r)
			if !ok {
				b = append(b, `<c/>`...)
				continue
			}
			b = append(b, `<c><v>`...)
			b = strconv.AppendFloat(b, x, 'f', -1, 64)
			b = append(b, `</v></c>`...)
			full = len(b)
		case kindDate:
			x := excelTime(c.date(r))
			if x == nil {
				b = append(b, `<c/>`...)
				continue
			}
			b = append(b, `<c s="`...)
			b = strconv.AppendInt(b, int64(s.date), 10)
			b = append(b, `"><v>`...)
			b = strconv.AppendFloat(b, x.(float64), 'f', 6, 64)
			b = append(b, `</v></c>`...)
			full = len(b)
		}
	}
	b = b[:full] // trailing empty cells need not be written
	b = append(b, `</row>`...)
	s.buf = b
	if _, err := s.bw.Write(b); err != nil {
		return fmt.Errorf("write row %d of sheet %q: %w", s.rows+1, s.name, err)
	}
	return nil
}

// finish ends the sheet: the filter over its header and rows, the print
// layout (landscape, one page wide, as many pages down as it takes), and
// flushes the compressor.
func (s *sheetWriter) finish() error {
	last := columnName(len(listColumns))
	fmt.Fprintf(s.bw, `</sheetData><autoFilter ref="A1:%s%d"/>`, last, max(s.rows, 1)+1)
	s.bw.WriteString(`<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/><pageSetup orientation="landscape" fitToWidth="1" fitToHeight="0"/></worksheet>`)
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("finish sheet %q: %w", s.name, err)
	}
	if s.fw != nil {
		if err := s.fw.Close(); err != nil {
			return fmt.Errorf("finish sheet %q: %w", s.name, err)
		}
	}
	return nil
}

// filterRef is the range the sheet's filter covers for n data rows.
func filterRef(n int) string {
	return fmt.Sprintf("A1:%s%d", columnName(len(listColumns)), max(n, 1)+1)
}

// columnName is the letters of 1-based column n.
func columnName(n int) string {
	var b []byte
	for n > 0 {
		n--
		b = append([]byte{byte('A' + n%26)}, b...)
		n /= 26
	}
	return string(b)
}

// appendT appends <t>s</t>, escaped for XML, keeping leading and trailing
// spaces and line breaks (xml:space) and carriage returns (as &#13;, which
// an XML parser would otherwise turn into line feeds).
func appendT(b []byte, s string) []byte {
	if s != strings.TrimSpace(s) || strings.ContainsAny(s, "\n\t\r") {
		b = append(b, `<t xml:space="preserve">`...)
	} else {
		b = append(b, `<t>`...)
	}
	b = appendEscaped(b, s)
	return append(b, `</t>`...)
}

func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#13;"
		default:
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, esc...)
		start = i + 1
	}
	return append(b, s[start:]...)
}

func escapeText(s string) string { return string(appendEscaped(nil, s)) }
