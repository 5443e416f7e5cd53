package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PlotSpec is one panel of a plot: the named metrics of a workload's
// measured and simulated rows, one group per row. Linear panels draw
// grouped bars; Log panels draw points on a logarithmic axis (bars have no
// base on a log scale).
type PlotSpec struct {
	Title   string
	Metrics []string
	YLabel  string
	Log     bool
}

var plotColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// panel builds the plot of one spec, or nil if no row has its metrics.
func panel(spec PlotSpec, rows []Result) (*plot.Plot, error) {
	var use []Result
	for _, r := range rows {
		for _, m := range spec.Metrics {
			if v, ok := r.Get(m); ok && (!spec.Log || v > 0) {
				use = append(use, r)
				break
			}
		}
	}
	if len(use) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = spec.Title
	p.Y.Label.Text = spec.YLabel
	p.Legend.Top = true
	p.Legend.Left = false
	names := make([]string, len(use))
	for i, r := range use {
		names[i] = strings.ReplaceAll(r.Config, " ", "\n")
	}
	p.NominalX(names...)
	p.X.Tick.Label.Font.Size = vg.Points(7)
	k := len(spec.Metrics)
	p.Y.Tick.Marker = numTicks{log: spec.Log}
	if spec.Log {
		p.Y.Scale = plot.LogScale{}
		for j, name := range spec.Metrics {
			var pts plotter.XYs
			for i, r := range use {
				if v, ok := r.Get(name); ok && v > 0 {
					pts = append(pts, plotter.XY{X: float64(i) + (float64(j)-float64(k-1)/2)*0.12, Y: v})
				}
			}
			if len(pts) == 0 {
				continue
			}
			s, err := plotter.NewScatter(pts)
			if err != nil {
				return nil, err
			}
			s.GlyphStyle.Color = plotColors[j%len(plotColors)]
			s.GlyphStyle.Radius = vg.Points(4)
			s.GlyphStyle.Shape = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}, draw.SquareGlyph{}, draw.CrossGlyph{}}[j%4]
			p.Add(s)
			if k > 1 {
				p.Legend.Add(name, s)
			}
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, r := range use {
			for _, name := range spec.Metrics {
				if v, ok := r.Get(name); ok && v > 0 {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
		p.Y.Min, p.Y.Max = lo/2, hi*3
		p.X.Min, p.X.Max = -0.5, float64(len(use))-0.5
		p.Add(plotter.NewGrid())
		return p, nil
	}
	w := vg.Points(math.Min(36, 220/float64(len(use)*k)))
	for j, name := range spec.Metrics {
		vals := make(plotter.Values, len(use))
		for i, r := range use {
			v, _ := r.Get(name)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				v = 0
			}
			vals[i] = v
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		b.Color = plotColors[j%len(plotColors)]
		b.LineStyle.Width = 0
		b.Offset = vg.Length(float64(j)-float64(k-1)/2) * w
		p.Add(b)
		if k > 1 {
			p.Legend.Add(name, b)
		}
	}
	p.Y.Min = 0
	p.X.Min, p.X.Max = -0.5, float64(len(use))-0.5
	if k > 1 {
		p.Y.Max *= 1.4 // room for the legend
	} else {
		p.Y.Max *= 1.05
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

// numTicks labels ticks compactly: 1.5k, 12M.
type numTicks struct{ log bool }

func (t numTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	if t.log {
		ts = plot.LogTicks{Prec: -1}.Ticks(lo, hi)
	} else {
		ts = plot.DefaultTicks{}.Ticks(lo, hi)
	}
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = fmtTick(ts[i].Value)
		}
	}
	return ts
}

func fmtTick(v float64) string {
	a := math.Abs(v)
	for _, u := range []struct {
		div  float64
		unit string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if a >= u.div {
			return strconv.FormatFloat(v/u.div, 'g', 4, 64) + u.unit
		}
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// WritePlot draws one panel per PlotSpec of the workloads that have rows,
// two panels a line, and writes the image in format "png" or "svg".
func WritePlot(w io.Writer, format string, ws []Workload, results []Result, title string) error {
	var plots []*plot.Plot
	for _, wl := range ws {
		var rows []Result
		for _, r := range results {
			if r.Workload == wl.Name && r.Kind != Ratio {
				rows = append(rows, r)
			}
		}
		for _, spec := range wl.Plots {
			p, err := panel(spec, rows)
			if err != nil {
				return fmt.Errorf("plot %q: %w", spec.Title, err)
			}
			if p != nil {
				plots = append(plots, p)
			}
		}
	}
	if len(plots) == 0 {
		return fmt.Errorf("nothing to plot")
	}
	const cols = 2
	nrows := (len(plots) + cols - 1) / cols
	width := 15 * vg.Inch
	head := 0.5 * vg.Inch
	height := vg.Length(nrows)*3.6*vg.Inch + head
	c, err := draw.NewFormattedCanvas(width, height, format)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	// White background (PNG would otherwise be transparent).
	dc.SetColor(color.White)
	var bg vg.Path
	bg.Move(vg.Point{})
	bg.Line(vg.Point{X: width})
	bg.Line(vg.Point{X: width, Y: height})
	bg.Line(vg.Point{Y: height})
	bg.Close()
	dc.Fill(bg)
	if title != "" {
		sty := draw.TextStyle{Color: color.Black, Font: plot.DefaultFont, XAlign: draw.XCenter, YAlign: draw.YTop,
			Handler: plot.DefaultTextHandler}
		sty.Font.Size = vg.Points(13)
		sty.Font = plot.DefaultFont
		sty.Font.Size = vg.Points(13)
		dc.FillText(sty, vg.Point{X: width / 2, Y: height - head/4}, title)
	}
	body := dc
	body.Max.Y -= head
	grid := make([][]*plot.Plot, nrows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
		for j := range grid[i] {
			if k := i*cols + j; k < len(plots) {
				grid[i][j] = plots[k]
			}
		}
	}
	tiles := draw.Tiles{Rows: nrows, Cols: cols, PadX: vg.Inch / 3, PadY: vg.Inch / 4,
		PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	canvases := plot.Align(grid, tiles, body)
	for i := range grid {
		for j, p := range grid[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	_, err = c.WriteTo(w)
	return err
}
