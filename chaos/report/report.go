// Package report turns a chaos run's history and check result into an HTML
// page with plots, Jepsen style: latency over time per operation (log scale,
// ok/info/fail in different colours) with fault windows shaded, and
// throughput over time.
package report

import (
	"fmt"
	"html/template"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/sluice-io/sluice/chaos/checker"
	"github.com/sluice-io/sluice/chaos/history"
)

// FaultWindow is the time a fault was in place: from its injection to the
// end of its heal.
type FaultWindow struct {
	Fault string        `json:"fault"`
	Nodes []string      `json:"nodes,omitempty"`
	Desc  string        `json:"desc,omitempty"`
	Start time.Duration `json:"start_ns"`
	End   time.Duration `json:"end_ns"`
}

// FaultWindows pairs each fault with the heal that followed it. A fault
// never healed lasts until the end of the history.
func FaultWindows(ops []history.Op) []FaultWindow {
	sorted := append([]history.Op(nil), ops...)
	history.SortByInvoke(sorted)
	var end int64
	for _, op := range sorted {
		end = max(end, op.Complete)
	}
	var out []FaultWindow
	open := map[string][]int{} // fault kind → indexes of unhealed windows
	for _, op := range sorted {
		switch op.F {
		case history.FFault:
			out = append(out, FaultWindow{Fault: op.Fault, Nodes: op.Nodes, Desc: op.Value, Start: time.Duration(op.Invoke), End: time.Duration(end)})
			open[op.Fault] = append(open[op.Fault], len(out)-1)
		case history.FHeal:
			if q := open[op.Fault]; len(q) > 0 {
				out[q[0]].End = time.Duration(op.Complete)
				open[op.Fault] = q[1:]
			}
		}
	}
	return out
}

// Input is everything the report shows.
type Input struct {
	Title string
	// Dir receives index.html and the PNG plots.
	Dir    string
	Ops    []history.Op
	Check  *checker.Result
	Facts  [][2]string // label, value
	Notes  []string
	Links  [][2]string // label, path relative to Dir
	Faults []FaultWindow
	// Throughput, when set, is the count of ok operations completed in
	// each second, per function, for histories whose Ops are a sample (a
	// soak's); otherwise it is counted from Ops.
	Throughput map[string][]float64
}

var (
	colOK   = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colInfo = color.RGBA{R: 0xff, G: 0xa5, B: 0x00, A: 0xff}
	colFail = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// faultFamily names the family of a fault kind (kill-leader -> kill): one
// colour and one legend entry per family keeps the legend short.
func faultFamily(kind string) string {
	for _, fam := range []string{"kill", "pause", "partition", "restart"} {
		if strings.HasPrefix(kind, fam) {
			return fam
		}
	}
	return kind
}

func faultColor(kind string) color.Color {
	switch faultFamily(kind) {
	case "kill":
		return color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0x30}
	case "pause":
		return color.NRGBA{R: 0xff, G: 0x9f, B: 0x00, A: 0x30}
	case "partition":
		return color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0x30}
	case "restart":
		return color.NRGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0x30}
	}
	return color.NRGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0x30}
}

// shade adds one translucent band per fault window spanning [ylo, yhi],
// and a legend entry per fault family (the table on the page names each
// fault).
func shade(p *plot.Plot, faults []FaultWindow, ylo, yhi float64) error {
	seen := map[string]bool{}
	for _, f := range faults {
		x0, x1 := f.Start.Seconds(), f.End.Seconds()
		poly, err := plotter.NewPolygon(plotter.XYs{{X: x0, Y: ylo}, {X: x1, Y: ylo}, {X: x1, Y: yhi}, {X: x0, Y: yhi}})
		if err != nil {
			return err
		}
		poly.Color = faultColor(f.Fault)
		poly.LineStyle.Width = 0
		p.Add(poly)
		if fam := faultFamily(f.Fault); !seen[fam] {
			seen[fam] = true
			p.Legend.Add(fam, poly)
		}
	}
	return nil
}

// functions present in the history, in a fixed order.
func functions(ops []history.Op) []string {
	order := []string{history.FSend, history.FPoll, history.FCommit, history.FFetchOffset, history.FFinalRead}
	present := map[string]bool{}
	for _, op := range ops {
		present[op.F] = true
	}
	var out []string
	for _, f := range order {
		if present[f] {
			out = append(out, f)
		}
	}
	return out
}

// latencyPlot draws one function's latencies over time.
func latencyPlot(ops []history.Op, f string, faults []FaultWindow, sampled bool, path string) error {
	p := plot.New()
	p.Title.Text = "latency: " + f
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "latency (ms)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	byType := map[history.Type]plotter.XYs{}
	ylo, yhi := math.Inf(1), math.Inf(-1)
	for _, op := range ops {
		if op.F != f {
			continue
		}
		ms := math.Max(float64(op.Complete-op.Invoke)/1e6, 0.01) // log scale needs > 0
		byType[op.Type] = append(byType[op.Type], plotter.XY{X: float64(op.Invoke) / 1e9, Y: ms})
		ylo, yhi = math.Min(ylo, ms), math.Max(yhi, ms)
	}
	if math.IsInf(ylo, 1) {
		ylo, yhi = 0.01, 1
	}
	// Headroom above the highest point for the legend: on a log scale,
	// the top third of the plot.
	yhi *= math.Pow(math.Max(yhi/ylo, 10), 0.5)
	p.Y.Max = yhi
	if err := shade(p, faults, ylo, yhi); err != nil {
		return err
	}
	for _, t := range []struct {
		typ history.Type
		col color.Color
	}{{history.OK, colOK}, {history.Info, colInfo}, {history.Fail, colFail}} {
		pts := byType[t.typ]
		if len(pts) == 0 {
			continue
		}
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		s.GlyphStyle.Color = t.col
		s.GlyphStyle.Radius = vg.Points(1.2)
		s.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(s)
		label := fmt.Sprintf("%s (%d)", t.typ, len(pts))
		if sampled {
			label = fmt.Sprintf("%s (%d shown)", t.typ, len(pts))
		}
		p.Legend.Add(label, s)
	}
	return p.Save(10*vg.Inch, 4*vg.Inch, path)
}

// throughputPlot draws completed ok operations per second, per function.
func throughputPlot(ops []history.Op, fs []string, given map[string][]float64, faults []FaultWindow, path string) error {
	p := plot.New()
	p.Title.Text = "throughput (ok operations completed per second)"
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "ops/s"
	p.Legend.Top = true
	var end int64
	for _, op := range ops {
		end = max(end, op.Complete)
	}
	buckets := int(end/int64(time.Second)) + 1
	for _, c := range given {
		buckets = max(buckets, len(c))
	}
	counts := map[string][]float64{}
	for _, f := range fs {
		counts[f] = make([]float64, buckets)
		copy(counts[f], given[f])
	}
	ymax := 1.0
	for _, op := range ops {
		if given != nil || op.Type != history.OK || counts[op.F] == nil {
			continue
		}
		b := int(op.Complete / int64(time.Second))
		counts[op.F][b]++
	}
	for _, c := range counts {
		for _, v := range c {
			ymax = math.Max(ymax, v)
		}
	}
	ymax *= 2.2 // headroom for the legend
	p.Y.Max = ymax
	if err := shade(p, faults, 0, ymax); err != nil {
		return err
	}
	palette := []color.Color{colOK, color.RGBA{B: 0xcc, A: 0xff}, color.RGBA{R: 0x99, B: 0x99, A: 0xff}, color.RGBA{R: 0x88, G: 0x55, A: 0xff}, color.Black}
	for i, f := range fs {
		xys := make(plotter.XYs, buckets)
		for b := range xys {
			xys[b] = plotter.XY{X: float64(b) + 0.5, Y: counts[f][b]}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(f, l)
	}
	return p.Save(10*vg.Inch, 4*vg.Inch, path)
}

type page struct {
	Input
	Verdict     string
	VerdictCls  string
	Counts      [][2]string
	Images      []string
	Unavailable []unavail
	Recoveries  []recovery
	FaultRows   []faultRow
	OpRows      [][]string
}

type unavail struct {
	Partition string
	From, To  string
	Duration  string
}

type recovery struct {
	Fault, HealAt, Max string
}

type faultRow struct {
	Fault, Nodes, Desc, Start, End, Duration string
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// Write renders the plots and index.html into in.Dir.
func Write(in Input) error {
	if err := os.MkdirAll(in.Dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if in.Faults == nil {
		in.Faults = FaultWindows(in.Ops)
	}
	client := make([]history.Op, 0, len(in.Ops))
	for _, op := range in.Ops {
		if op.IsClient() {
			client = append(client, op)
		}
	}
	pg := page{Input: in}
	fs := functions(client)
	for _, f := range fs {
		if f == history.FFinalRead {
			continue
		}
		name := "latency-" + f + ".png"
		if err := latencyPlot(client, f, in.Faults, in.Throughput != nil, filepath.Join(in.Dir, name)); err != nil {
			return fmt.Errorf("report: plot %s: %w", name, err)
		}
		pg.Images = append(pg.Images, name)
	}
	if err := throughputPlot(client, fs, in.Throughput, in.Faults, filepath.Join(in.Dir, "throughput.png")); err != nil {
		return fmt.Errorf("report: plot throughput: %w", err)
	}
	pg.Images = append(pg.Images, "throughput.png")

	if c := in.Check; c != nil {
		pg.Verdict = strings.ToUpper(string(c.Verdict))
		pg.VerdictCls = string(c.Verdict)
		kinds := make([]string, 0, len(c.Counts))
		for k := range c.Counts {
			kinds = append(kinds, string(k))
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			pg.Counts = append(pg.Counts, [2]string{k, fmt.Sprint(c.Counts[checker.Kind(k)])})
		}
		for _, p := range c.Partitions {
			w := p.LongestUnavailable
			pg.Unavailable = append(pg.Unavailable, unavail{
				Partition: fmt.Sprintf("%s/%d", p.Topic, p.Partition),
				From:      secs(time.Duration(w.Start)), To: secs(time.Duration(w.End)), Duration: secs(w.Duration()),
			})
		}
		for _, r := range c.Recoveries {
			m := secs(r.Max)
			if r.Max < 0 {
				m = "not recovered before the next fault"
			}
			pg.Recoveries = append(pg.Recoveries, recovery{Fault: r.Fault, HealAt: secs(time.Duration(r.HealAt)), Max: m})
		}
		fnames := make([]string, 0, len(c.Ops))
		for f := range c.Ops {
			fnames = append(fnames, f)
		}
		sort.Strings(fnames)
		for _, f := range fnames {
			m := c.Ops[f]
			pg.OpRows = append(pg.OpRows, []string{f, fmt.Sprint(m[history.OK]), fmt.Sprint(m[history.Info]), fmt.Sprint(m[history.Fail])})
		}
	}
	for _, f := range in.Faults {
		pg.FaultRows = append(pg.FaultRows, faultRow{Fault: f.Fault, Nodes: strings.Join(f.Nodes, ","), Desc: f.Desc,
			Start: secs(f.Start), End: secs(f.End), Duration: secs(f.End - f.Start)})
	}
	out, err := os.Create(filepath.Join(in.Dir, "index.html"))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer out.Close()
	if err := pageTmpl.Execute(out, pg); err != nil {
		return fmt.Errorf("report: render: %w", err)
	}
	return out.Close()
}

var pageTmpl = template.Must(template.New("index").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:90%}
.pass{color:#2ca02c}.fail{color:#d62728}.inconclusive{color:#ff7f0e}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
code{font-size:90%}
</style></head><body>
<h1>{{.Title}}</h1>
{{with .Check}}<h2 class="{{$.VerdictCls}}">{{$.Verdict}}</h2>{{end}}
<table>{{range .Facts}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>
{{if .Notes}}<h3>Notes</h3><ul>{{range .Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{with .Check}}
{{if .Inconclusive}}<h3 class="inconclusive">Inconclusive</h3><ul>{{range .Inconclusive}}<li>{{.}}</li>{{end}}</ul>{{end}}
<h3>Anomalies</h3>
{{if $.Counts}}<table><tr><th>kind</th><th>count</th></tr>{{range $.Counts}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>{{end}}</table>
<table><tr><th>kind</th><th>partition</th><th>detail</th><th>ops</th></tr>
{{range .Anomalies}}<tr><td>{{.Kind}}</td><td>{{.Topic}}/{{.Partition}}</td><td>{{.Detail}}</td><td>{{.Ops}}</td></tr>{{end}}</table>
{{else}}<p>None found.</p>{{end}}
<h3>Linearizability (Porcupine)</h3>
<table><tr><th>partition</th><th>result</th><th>operations</th><th>time</th><th>note</th></tr>
{{range .Linearizability}}<tr><td>{{.Topic}}/{{.Partition}}</td><td>{{.Result}}</td><td>{{.Ops}}</td><td>{{.Duration}}</td><td>{{.Reason}}{{if .Visualization}} <a href="{{.Visualization}}">timeline</a>{{end}}</td></tr>{{end}}</table>
<h3>Operations</h3>
<table><tr><th>function</th><th>ok</th><th>info</th><th>fail</th></tr>{{range $.OpRows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
<h3>Partitions</h3>
<table><tr><th>partition</th><th>sends ok/info/fail</th><th>final length</th><th>replica lengths</th><th>info sends present</th></tr>
{{range .Partitions}}<tr><td>{{.Topic}}/{{.Partition}}</td><td>{{.SendsOK}}/{{.SendsInfo}}/{{.SendsFail}}</td><td>{{.FinalLength}}</td><td>{{.ReplicaLengths}}</td><td>{{.InfoSendsPresent}}</td></tr>{{end}}</table>
<h3>Unavailability (longest window without an acknowledged append)</h3>
<table><tr><th>partition</th><th>from</th><th>to</th><th>length</th></tr>{{range $.Unavailable}}<tr><td>{{.Partition}}</td><td>{{.From}}</td><td>{{.To}}</td><td>{{.Duration}}</td></tr>{{end}}</table>
<h3>Recovery after each heal (until every partition accepted an append)</h3>
<table><tr><th>fault</th><th>healed at</th><th>recovery</th></tr>{{range $.Recoveries}}<tr><td>{{.Fault}}</td><td>{{.HealAt}}</td><td>{{.Max}}</td></tr>{{end}}</table>
{{end}}
<h3>Faults</h3>
<table><tr><th>fault</th><th>nodes</th><th>from</th><th>to</th><th>length</th><th>detail</th></tr>
{{range .FaultRows}}<tr><td>{{.Fault}}</td><td>{{.Nodes}}</td><td>{{.Start}}</td><td>{{.End}}</td><td>{{.Duration}}</td><td>{{.Desc}}</td></tr>{{end}}</table>
<h3>Plots</h3>
{{range .Images}}<img src="{{.}}" alt="{{.}}"><br>{{end}}
<h3>Files</h3><ul>{{range .Links}}<li><a href="{{index . 1}}">{{index . 0}}</a></li>{{end}}</ul>
</body></html>
`))
