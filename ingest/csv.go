package ingest

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	blockreport "github.com/blockreport/blockreport"
)

// Columns are the CSV columns Parse knows, named like the store's. Header
// names are matched case-insensitively; any other column is an error.
var Columns = []string{
	"tenant_id", "user_id", "aad_object_id", "user_name", "email", "conversation_id", "conversation_type",
	"team_id", "service_url", "bot_id", "channel_id", "locale", "opted_out",
}

// parseCSV reads CSV with a header row, one record at a time.
func (p *parser) parseCSV() {
	p.lines.off, p.lines.newlines = true, nil
	r := csv.NewReader(p.br)
	r.FieldsPerRecord = -1 // checked here, to name the line
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		p.csvProblem(err)
		return
	}
	if !validUTF8(header) {
		p.problem(p.base+1, notUTF8)
		return
	}
	known := map[string]bool{}
	for _, c := range Columns {
		known[c] = true
	}
	col := map[string]int{}
	var unknown []string
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !known[h] {
			unknown = append(unknown, quote(h))
			continue
		}
		if _, dup := col[h]; dup {
			p.problem(p.base+1, fmt.Sprintf("CSV header names column %q twice", h))
			return
		}
		col[h] = i
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		p.problem(p.base+1, fmt.Sprintf("CSV header has unknown column(s) %s; known columns: %s",
			strings.Join(unknown, ", "), strings.Join(Columns, ", ")))
		return
	}
	width := len(header)
	for !p.stopped {
		rec, err := r.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			p.csvProblem(err)
			return
		}
		line, _ := r.FieldPos(0)
		line += p.base
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // blank line with a one-column header
		}
		if !validUTF8(rec) {
			p.problem(line, notUTF8)
			continue
		}
		if len(rec) != width {
			p.problem(line, fmt.Sprintf("%d fields, the header has %d", len(rec), width))
			continue
		}
		get := func(name string) string {
			if i, ok := col[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		ref := blockreport.Reference{
			TenantID: get("tenant_id"), UserID: get("user_id"), AADObjectID: get("aad_object_id"),
			UserName: get("user_name"), Email: get("email"), ConversationID: get("conversation_id"),
			ConversationType: blockreport.ConversationType(get("conversation_type")), TeamID: get("team_id"),
			ServiceURL: get("service_url"), BotID: get("bot_id"), ChannelID: get("channel_id"), Locale: get("locale"),
		}
		if s := get("opted_out"); s != "" {
			b, err := parseBool(s)
			if err != nil {
				p.problem(line, err.Error())
				continue
			}
			ref.OptedOut = b
		}
		normalize(&ref)
		// Keep the row as the raw record, as a JSON object of its columns.
		row := make(map[string]string, len(col))
		for name, i := range col {
			row[name] = rec[i]
		}
		ref.Raw, _ = json.Marshal(row) // strings always marshal
		p.add(line, "", ref)
	}
}

func validUTF8(fields []string) bool {
	for _, f := range fields {
		if !utf8.ValidString(f) {
			return false
		}
	}
	return true
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "1", "y", "t":
		return true, nil
	case "false", "no", "0", "n", "f":
		return false, nil
	}
	return false, fmt.Errorf("opted_out %s: want true or false", quote(s))
}

func (p *parser) csvProblem(err error) {
	if p.ioFailed(err) {
		return
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		p.problem(p.base+pe.Line, "malformed CSV: "+pe.Err.Error())
		return
	}
	p.problem(0, "malformed CSV: "+err.Error())
}
