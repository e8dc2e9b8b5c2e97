package report

import (
	"bytes"
	"context"
	"os"
	"testing"

	blockreport "github.com/blockreport/blockreport"
)

func TestZZVis(t *testing.T) {
	src := fixture()
	g := genSource{n: 300, tenants: 3, changeEvery: 7}
	g.Rows(context.Background(), 3, func(r blockreport.Row) error { r.RunID = 3; src.rows[3] = append(src.rows[3], r); return nil })
	for _, red := range []bool{false, true} {
		r, err := Build(context.Background(), src, 3, Options{Redact: red})
		if err != nil {
			t.Fatal(err)
		}
		var h, x bytes.Buffer
		WriteHTML(&h, r)
		if err := WriteExcel(context.Background(), &x, r, src, Options{Redact: red}); err != nil {
			t.Fatal(err)
		}
		name := "/tmp/vis/report"
		if red {
			name += "-redacted"
		}
		os.MkdirAll("/tmp/vis", 0o755)
		os.WriteFile(name+".html", h.Bytes(), 0o644)
		os.WriteFile(name+".xlsx", x.Bytes(), 0o644)
	}
}
