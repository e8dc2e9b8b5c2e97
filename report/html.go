package report

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"strings"
	"sync"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/templates"
)

// page is the parsed HTML template with its inline CSS and script and the
// Content-Security-Policy that allows exactly those (by SHA-256 hash).
type page struct {
	tmpl *template.Template
	css  template.CSS
	js   template.JS
	csp  string
}

// loadPage parses the embedded template once per process.
var loadPage = sync.OnceValues(func() (*page, error) { return parsePage(templates.FS) })

func parsePage(fsys fs.FS) (*page, error) {
	css, err := fs.ReadFile(fsys, "report.css")
	if err != nil {
		return nil, fmt.Errorf("read report stylesheet: %w", err)
	}
	js, err := fs.ReadFile(fsys, "report.js")
	if err != nil {
		return nil, fmt.Errorf("read report script: %w", err)
	}
	tmpl, err := template.New("report.html.tmpl").Funcs(funcs).ParseFS(fsys, "report.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse report template: %w", err)
	}
	csp := "default-src 'none'; style-src " + hash(css) + "; script-src " + hash(js) +
		"; img-src 'none'; font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'"
	return &page{tmpl: tmpl, css: template.CSS(css), js: template.JS(js), csp: csp}, nil
}

// hash is the CSP source expression of an inline element's exact content.
func hash(b []byte) string {
	sum := sha256.Sum256(b)
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

var funcs = template.FuncMap{
	"num":      num,
	"pct":      pct,
	"delta":    delta,
	"when":     when,
	"day":      func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"label":    func(s blockreport.Status) string { return s.Label() },
	"color":    color,
	"scope":    func(t blockreport.ConversationType) string { return string(scopeOf(t)) },
	"httpcode": httpCode,
	"reason":   Reason,
	"show":     show,
	"statusOf": func(c Counts, s string) int { return c[blockreport.Status(s)] },
	"add":      func(a, b int) int { return a + b },
	"addf":     func(a, b float64) float64 { return round1(a + b) },
	"sub":      func(a, b int) int { return a - b },
	"mixHeight": func(bars []bar) int {
		return len(bars)*mixRowH + 4
	},
	"table": func(id string, rows []blockreport.Row) rowTable { return rowTable{ID: id, Rows: rows} },
}

// rowTable is a table of rows with an optional HTML id for the filter.
type rowTable struct {
	ID   string
	Rows []blockreport.Row
}

// WriteHTML renders r as one self-contained HTML page: inline CSS, inline
// SVG charts and a small inline filter script, all allowed by a strict
// Content-Security-Policy, with no external resources.
func WriteHTML(w io.Writer, r *Report) error {
	p, err := loadPage()
	if err != nil {
		return err
	}
	v := view{
		Report:     r,
		CSS:        p.css,
		JS:         p.js,
		CSP:        p.csp,
		Muting:     mutingNote,
		Mix:        mixChart(r),
		TrendChart: trendChart(r),
		Unreach:    Counts(countsOf(r)).Unreachable(),
		Unchk:      Counts(countsOf(r)).Unchecked(),
		Statuses:   blockreport.Statuses,
	}
	if err := p.tmpl.Execute(w, v); err != nil {
		return fmt.Errorf("render HTML report of run %d: %w", r.Run.ID, err)
	}
	return nil
}

func countsOf(r *Report) map[blockreport.Status]int {
	m := map[blockreport.Status]int{}
	for _, c := range r.Counts {
		m[c.Status] = c.Count
	}
	return m
}

// view is what the template sees.
type view struct {
	*Report
	CSS        template.CSS
	JS         template.JS
	CSP        string
	Muting     string
	Mix        []bar
	TrendChart trendSVG
	Unreach    int
	Unchk      int
	Statuses   []blockreport.Status
}

// bar is one bar of the status-mix chart, in SVG user units.
type bar struct {
	Label string
	Color string
	Count int
	Share float64
	Y     int
	W     float64
}

const (
	mixBarW = 250.0
	mixRowH = 26
)

func mixChart(r *Report) []bar {
	var bars []bar
	y := 0
	for _, c := range r.Counts {
		if c.Count == 0 {
			continue
		}
		w := math.Max(c.Share*mixBarW, 1)
		bars = append(bars, bar{Label: c.Status.Label(), Color: color(c.Status), Count: c.Count, Share: c.Share, Y: y, W: round1(w)})
		y += mixRowH
	}
	return bars
}

// trendSVG is the trend chart: the share of each non-reachable group per
// run, oldest run left.
type trendSVG struct {
	Height int
	YMax   float64 // share at the top of the plot
	Ticks  []tick
	XLabel []tick
	Lines  []line
}

type tick struct {
	Pos   float64
	Label string
}

type line struct {
	Label  string
	Color  string
	Points string
	Dots   []dot
}

type dot struct{ X, Y float64 }

const (
	trendLeft   = 48.0
	trendRight  = 620.0
	trendTop    = 16.0
	trendBottom = 200.0
)

type series struct {
	label string
	color string
	value func(Counts) int
}

var trendSeries = []series{
	{"Blocked", color(blockreport.StatusBlocked), func(c Counts) int { return c[blockreport.StatusBlocked] }},
	{"Uninstalled", color(blockreport.StatusUninstalled), func(c Counts) int { return c[blockreport.StatusUninstalled] }},
	{"Admin disabled", color(blockreport.StatusAdminDisabled), func(c Counts) int { return c[blockreport.StatusAdminDisabled] }},
	{"Not found", color(blockreport.StatusNotFound), func(c Counts) int { return c[blockreport.StatusNotFound] }},
	{"Could not check", color(blockreport.StatusFailed), func(c Counts) int { return c.Unchecked() }},
}

func trendChart(r *Report) trendSVG {
	t := trendSVG{Height: 240}
	maxShare := 0.0
	share := func(p TrendPoint, s series) float64 {
		if p.Total == 0 {
			return 0
		}
		return float64(s.value(p.Counts)) / float64(p.Total)
	}
	for _, p := range r.Trend {
		for _, s := range trendSeries {
			maxShare = math.Max(maxShare, share(p, s))
		}
	}
	t.YMax = niceMax(maxShare)
	for i := 0; i <= 4; i++ {
		v := t.YMax * float64(i) / 4
		t.Ticks = append(t.Ticks, tick{Pos: round1(trendBottom - (trendBottom-trendTop)*float64(i)/4), Label: pct(v)})
	}
	n := len(r.Trend)
	x := func(i int) float64 {
		if n == 1 {
			return (trendLeft + trendRight) / 2
		}
		return round1(trendLeft + (trendRight-trendLeft)*float64(i)/float64(n-1))
	}
	for i, p := range r.Trend {
		t.XLabel = append(t.XLabel, tick{Pos: x(i), Label: fmt.Sprintf("#%d", p.RunID)})
	}
	for _, s := range trendSeries {
		l := line{Label: s.label, Color: s.color}
		var pts []string
		for i, p := range r.Trend {
			y := round1(trendBottom - (trendBottom-trendTop)*share(p, s)/t.YMax)
			pts = append(pts, fmt.Sprintf("%g,%g", x(i), y))
			l.Dots = append(l.Dots, dot{x(i), y})
		}
		l.Points = strings.Join(pts, " ")
		t.Lines = append(t.Lines, l)
	}
	return t
}

// niceMax rounds a share up to a readable top of the axis.
func niceMax(v float64) float64 {
	for _, m := range []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1} {
		if v <= m {
			return m
		}
	}
	return 1
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

var statusColors = map[blockreport.Status]string{
	blockreport.StatusReachable:     "#2e7d32",
	blockreport.StatusBlocked:       "#c62828",
	blockreport.StatusUninstalled:   "#ef6c00",
	blockreport.StatusAdminDisabled: "#6a1b9a",
	blockreport.StatusNotFound:      "#455a64",
	blockreport.StatusForbidden:     "#8d6e63",
	blockreport.StatusThrottled:     "#f9a825",
	blockreport.StatusFailed:        "#ad1457",
	blockreport.StatusInvalid:       "#9e9e9e",
	blockreport.StatusOptedOut:      "#1565c0",
}

func color(s blockreport.Status) string {
	if c, ok := statusColors[s]; ok {
		return c
	}
	return "#757575"
}

// num formats n with thousands separators: 1234567 → "1,234,567".
func num(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func pct(f float64) string {
	if f > 0 && f < 0.001 {
		return "<0.1%"
	}
	return fmt.Sprintf("%.1f%%", f*100)
}

func delta(n int) string {
	switch {
	case n > 0:
		return "+" + num(n)
	case n < 0:
		return "−" + num(-n)
	}
	return "±0"
}

// when formats a time in UTC; the zero time is "".
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func httpCode(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

// show makes bidirectional-text controls in stored text visible as
// "[U+202E]": left in place, an override such as U+202E would make
// "Ann\u202Egnp.exe" display as "Annexe.png" and could reorder the rest of
// the cell. Everything else is shown as stored (and escaped by html/template).
func show(s string) string {
	if !strings.ContainsFunc(s, isBidiControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isBidiControl(r) {
			fmt.Fprintf(&b, "[U+%04X]", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isBidiControl(r rune) bool {
	switch {
	case r == 0x061C, r == 0x200E, r == 0x200F,
		r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
