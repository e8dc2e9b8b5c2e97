package report

import (
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// maxCellChars is the most characters (UTF-16 code units) Excel keeps in a
// cell; longer text makes the file unreadable in some readers.
const maxCellChars = 32767

// clean makes s safe to show in either format without changing what it
// says: invalid UTF-8 and control characters other than tab, newline and
// carriage return (which XML 1.0 cannot carry, and HTML shows as garbage)
// become U+FFFD, as do the non-characters U+FFFE and U+FFFF; the text is cut
// to Excel's cell limit. Formula-looking text is left as is: the writers
// never interpret it.
func clean(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f || c >= 0x80 {
			ok = false
			break
		}
	}
	if ok && len(s) <= maxCellChars {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	units := 0
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0x7f, r == 0xFFFE, r == 0xFFFF:
			r = '\uFFFD'
		}
		n := 1
		if r > 0xFFFF {
			n = 2
		}
		if units+n > maxCellChars {
			break
		}
		units += n
		b.WriteRune(r)
	}
	return b.String()
}

// cleanRow cleans every string of a row that a report shows.
func cleanRow(r blockreport.Row) blockreport.Row {
	r.Raw = nil
	r.TenantID = clean(r.TenantID)
	r.UserID = clean(r.UserID)
	r.AADObjectID = clean(r.AADObjectID)
	r.UserName = clean(r.UserName)
	r.Email = clean(r.Email)
	r.ConversationID = clean(r.ConversationID)
	r.TeamID = clean(r.TeamID)
	r.ServiceURL = clean(r.ServiceURL)
	r.Reason = clean(r.Reason)
	r.Detail = clean(r.Detail)
	return r
}
