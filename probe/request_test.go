package probe

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const maxPause = 2 * time.Minute
	for _, tt := range []struct {
		name, value string
		want        time.Duration
		ok          bool
	}{
		{"absent", "", 0, false},
		{"seconds", "3", 3 * time.Second, true},
		{"fraction", "0.5", 500 * time.Millisecond, true},
		{"zero", "0", 0, true},
		{"spaces", "  7 ", 7 * time.Second, true},
		{"at the cap", "120", maxPause, true},
		{"above the cap", "121", maxPause, true},
		{"1e12 seconds", "1e12", maxPause, true},
		{"99999999999 seconds", "99999999999", maxPause, true},
		{"1e400 out of range", "1e400", maxPause, true},
		{"Inf", "Inf", maxPause, true},
		{"+Infinity", "+Infinity", maxPause, true},
		{"negative", "-5", 0, false},
		{"-Inf", "-Inf", 0, false},
		{"NaN", "NaN", 0, false},
		{"garbage", "soon", 0, false},
		{"date in 30s", now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"date in a year", now.AddDate(1, 0, 0).Format(http.TimeFormat), maxPause, true},
		{"date far away", "Fri, 31 Dec 9999 23:59:59 GMT", maxPause, true},
		{"date long ago", "Mon, 01 Jan 0001 00:00:00 GMT", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			got, ok := retryAfter(h, now, maxPause)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Retry-After %q: %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.ok)
			}
			if got < 0 || got > maxPause {
				t.Errorf("Retry-After %q: pause %v outside [0, %v]", tt.value, got, maxPause)
			}
		})
	}
}
