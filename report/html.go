package report

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"sort"
	"strconv"
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
	"table":      func(id string, rows []blockreport.Row) rowTable { return rowTable{ID: id, Rows: rows} },
	"trendShare": trendShare,
	"marker":     func(l line, d dot) marker { return marker{Shape: l.Shape, Color: l.Color, At: d} },
}

// marker is one dot of a trend line, drawn in the line's shape.
type marker struct {
	Shape, Color string
	At           dot
}

// rowTable is a table of rows with an optional HTML id for the filter.
type rowTable struct {
	ID    string
	Rows  []blockreport.Row
	Graph bool // show the Graph columns (department, account, installed)
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
		TrendCols:  trendSeries,
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
	TrendCols  []TrendSeries
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
// run, oldest run left, dated. Each series has its own colour (the status
// colours of the whole report), dash pattern and marker shape, and its
// current value written at the right end, moved apart so that two series
// with the same value (admin disabled and not found at 1.0 %) stay
// readable.
type trendSVG struct {
	Width, Height  int
	Left, Right    float64 // plot area, x
	Top, Bottom    float64 // plot area, y
	XLabelY, YearY float64
	YMax           float64 // share at the top of the plot
	Ticks          []tick
	XLabel         []tick
	Lines          []line
}

type tick struct {
	Pos   float64
	Y     float64 // of a date label's baseline
	Label string
	Year  string // under a date label: the year, where it starts or changes
}

type line struct {
	Label  string
	Color  string
	Dash   string // stroke-dasharray, "" for solid
	Shape  string // marker: circle, square, triangle, diamond, ring
	Points string
	Dots   []dot
	// End label: "Blocked 7.1 %" right of the last point.
	EndX, EndY float64
	EndText    string
}

type dot struct{ X, Y float64 }

// Polygon points of a triangle or diamond marker around the dot.
func (d dot) Triangle() string {
	return fmt.Sprintf("%g,%g %g,%g %g,%g", d.X, round1(d.Y-4.5), round1(d.X-4.5), round1(d.Y+3.5), round1(d.X+4.5), round1(d.Y+3.5))
}

func (d dot) Diamond() string {
	return fmt.Sprintf("%g,%g %g,%g %g,%g %g,%g", d.X, round1(d.Y-4.5), round1(d.X+4.5), d.Y, d.X, round1(d.Y+4.5), round1(d.X-4.5), d.Y)
}

func (d dot) Square() dot { return dot{round1(d.X - 3.5), round1(d.Y - 3.5)} }

const (
	trendWidth  = 760
	trendLeft   = 64.0
	trendRight  = 590.0
	trendTop    = 16.0
	trendBottom = 220.0
	endLabelGap = 15.0 // least vertical distance between two end labels
)

// TrendSeries is one line of both trends (HTML and workbook): a group of
// statuses, its colour, dash and marker.
type TrendSeries struct {
	Label string
	Color string
	Dash  string
	Shape string
	Value func(Counts) int
}

// trendSeries are the lines of the trend, in legend order.
var trendSeries = []TrendSeries{
	{"Blocked", color(blockreport.StatusBlocked), "", "circle", func(c Counts) int { return c[blockreport.StatusBlocked] }},
	{"Uninstalled", color(blockreport.StatusUninstalled), "7 3", "square", func(c Counts) int { return c[blockreport.StatusUninstalled] }},
	{"Admin disabled", color(blockreport.StatusAdminDisabled), "2 3", "triangle", func(c Counts) int { return c[blockreport.StatusAdminDisabled] }},
	{"Not found", color(blockreport.StatusNotFound), "9 3 2 3", "diamond", func(c Counts) int { return c[blockreport.StatusNotFound] }},
	{"Could not check", color(blockreport.StatusFailed), "3 2", "ring", func(c Counts) int { return c.Unchecked() }},
}

// trendShare is the share of the point's conversations in series s.
func trendShare(p TrendPoint, s TrendSeries) float64 {
	if p.Total == 0 {
		return 0
	}
	return float64(s.Value(p.Counts)) / float64(p.Total)
}

func trendChart(r *Report) trendSVG {
	t := trendSVG{Width: trendWidth, Height: 270, Left: trendLeft, Right: trendRight, Top: trendTop, Bottom: trendBottom,
		XLabelY: trendBottom + 20, YearY: trendBottom + 36}
	maxShare := 0.0
	for _, p := range r.Trend {
		for _, s := range trendSeries {
			maxShare = math.Max(maxShare, trendShare(p, s))
		}
	}
	t.YMax = niceMax(maxShare)
	for i := 0; i <= 4; i++ {
		v := t.YMax * float64(i) / 4
		t.Ticks = append(t.Ticks, tick{Pos: round1(trendBottom - (trendBottom-trendTop)*float64(i)/4), Label: tickPct(v)})
	}
	n := len(r.Trend)
	x := func(i int) float64 {
		if n == 1 {
			return round1((trendLeft + trendRight) / 2)
		}
		return round1(trendLeft + 24 + (trendRight-trendLeft-48)*float64(i)/float64(n-1))
	}
	labels := trendLabels(r.Trend)
	// Dates closer than a label's width alternate between two rows.
	stagger := n > 1 && (trendRight-trendLeft-48)/float64(n-1) < 56
	if stagger {
		t.YearY += 16
		t.Height += 16
	}
	year := ""
	for i, p := range r.Trend {
		// "2 Nov" on the axis, the year below it where it starts or changes.
		tk := tick{Pos: x(i), Y: t.XLabelY, Label: strings.Replace(labels[i], p.StartedAt.UTC().Format(" 2006"), "", 1)}
		if stagger && i%2 == 1 {
			tk.Y += 16
		}
		if yy := p.StartedAt.UTC().Format("2006"); yy != year {
			tk.Year, year = yy, yy
		}
		t.XLabel = append(t.XLabel, tk)
	}
	for _, s := range trendSeries {
		l := line{Label: s.Label, Color: s.Color, Dash: s.Dash, Shape: s.Shape}
		var pts []string
		for i, p := range r.Trend {
			y := round1(trendBottom - (trendBottom-trendTop)*trendShare(p, s)/t.YMax)
			pts = append(pts, fmt.Sprintf("%g,%g", x(i), y))
			l.Dots = append(l.Dots, dot{x(i), y})
		}
		l.Points = strings.Join(pts, " ")
		if n > 0 {
			last := l.Dots[n-1]
			l.EndX, l.EndY = round1(last.X+12), last.Y
			l.EndText = s.Label + " " + spacePct(trendShare(r.Trend[n-1], s))
		}
		t.Lines = append(t.Lines, l)
	}
	spreadLabels(t.Lines, trendTop, trendBottom+8)
	return t
}

// spreadLabels moves the end labels apart vertically, keeping their order
// by value, so that none is closer than endLabelGap to the next.
func spreadLabels(lines []line, top, bottom float64) {
	idx := make([]int, len(lines))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return lines[idx[a]].EndY < lines[idx[b]].EndY })
	for k := 1; k < len(idx); k++ {
		prev, cur := &lines[idx[k-1]], &lines[idx[k]]
		if cur.EndY-prev.EndY < endLabelGap {
			cur.EndY = prev.EndY + endLabelGap
		}
	}
	// Pushed past the bottom: shift the whole stack up.
	if n := len(idx); n > 0 {
		if over := lines[idx[n-1]].EndY - bottom; over > 0 {
			for _, i := range idx {
				lines[i].EndY -= over
			}
		}
		if under := top - lines[idx[0]].EndY; under > 0 {
			for _, i := range idx {
				lines[i].EndY += under
			}
		}
	}
	for i := range lines {
		lines[i].EndY = round1(lines[i].EndY + 4) // text baseline
	}
}

// tickPct is an axis label: "0 %", "2.5 %", "10 %".
func tickPct(f float64) string {
	return strconv.FormatFloat(math.Round(f*1000)/10, 'f', -1, 64) + " %"
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
