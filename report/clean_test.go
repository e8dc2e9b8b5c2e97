package report

import (
	"strings"
	"testing"
	"unicode/utf16"
)

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{hostileFormula, hostileFormula},
		{hostileRTL, hostileRTL},
		{hostileEmoji, hostileEmoji},
		{"tab\tnew\nline\r", "tab\tnew\nline\r"},
		{"nul\x00bel\x07esc\x1bdel\x7f", "nul\uFFFDbel\uFFFDesc\uFFFDdel\uFFFD"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
		{"non\uFFFEchar\uFFFF", "non\uFFFDchar\uFFFD"},
	}
	for _, tt := range tests {
		if got := clean(tt.in); got != tt.want {
			t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCleanCapsAtExcelLimit(t *testing.T) {
	for _, unit := range []string{"a", "é", "🚀"} {
		got := clean(strings.Repeat(unit, 40000))
		n := len(utf16.Encode([]rune(got)))
		if n > maxCellChars || n < maxCellChars-1 {
			t.Errorf("clean of 40000×%q has %d UTF-16 units, want %d (or one less for a pair)", unit, n, maxCellChars)
		}
	}
}
