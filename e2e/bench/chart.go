package bench

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Bar colours: coalescing off, on, and the database floor.
var (
	colourOff   = color.RGBA{R: 0xd9, G: 0x5f, B: 0x02, A: 0xff}
	colourOn    = color.RGBA{R: 0x1b, G: 0x9e, B: 0x77, A: 0xff}
	colourFloor = color.RGBA{R: 0x75, G: 0x70, B: 0xb3, A: 0xff}
)

// WriteChart draws orders/s of every result as a horizontal bar on a
// logarithmic axis (the floors and the services differ by orders of
// magnitude) and saves it as a PNG at path.
func WriteChart(path string, r *Report) error {
	p := plot.New()
	p.Title.Text = "Orders per second (reservations in 2 and 5), log scale"
	p.X.Label.Text = "per second"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = decadeTicks{}

	// The first result on top: bar i is drawn at y = n-1-i.
	n := len(r.Results)
	names := make([]string, n)
	b := &bars{values: make([]float64, n), colours: make([]color.Color, n), labels: make([]string, n)}
	lowest, highest := math.Inf(1), 0.0
	for i, res := range r.Results {
		y := n - 1 - i
		names[y] = fmt.Sprintf("%s %s, %s", res.ID, res.Scenario, res.Mode)
		rate := res.Rate()
		b.values[y] = rate
		b.labels[y] = thousands(int64(math.Round(rate))) + "/s"
		if !res.OK() {
			b.labels[y] += " (checks failed)"
		}
		switch {
		case res.ID == idFloorSingle || res.ID == idFloorBatch:
			b.colours[y] = colourFloor
		case res.Mode == modeOff:
			b.colours[y] = colourOff
		default:
			b.colours[y] = colourOn
		}
		if rate > 0 {
			lowest, highest = math.Min(lowest, rate), math.Max(highest, rate)
		}
	}
	if highest == 0 {
		lowest, highest = 1, 10
	}
	p.Add(b)
	if n > 0 {
		p.NominalY(names...)
	}
	// Whole decades, with room on the right for the value labels and a
	// free row on top for the legend.
	p.X.Min = math.Pow(10, math.Floor(math.Log10(lowest)))
	p.X.Max = math.Pow(10, math.Ceil(math.Log10(highest*8)))
	p.Y.Min, p.Y.Max = -0.6, float64(n)+0.4

	p.Legend.Top = true
	p.Legend.YOffs = -vg.Points(6)
	p.Legend.Add("coalescing off", swatch{colourOff})
	p.Legend.Add("coalescing on", swatch{colourOn})
	p.Legend.Add("database floor, no services", swatch{colourFloor})

	if err := p.Save(9*vg.Inch, vg.Length(1.6+0.42*float64(n+1))*vg.Inch, path); err != nil {
		return fmt.Errorf("save chart %s: %w", path, err)
	}
	return nil
}

// bars is a horizontal bar chart that works on a logarithmic X axis: each
// bar is drawn from the left edge of the plot area, not from 0.
type bars struct {
	values  []float64 // bar i at y = i
	colours []color.Color
	labels  []string
}

// Plot draws the bars and their value labels.
func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	half := (trY(1) - trY(0)) * 0.35
	style := text.Style{
		Font:    font.From(plot.DefaultFont, vg.Points(9)),
		Handler: plot.DefaultTextHandler,
		XAlign:  draw.XLeft,
		YAlign:  draw.YCenter,
		Color:   color.Black,
	}
	for i, v := range b.values {
		y := trY(float64(i))
		if v <= 0 {
			c.FillText(style, vg.Point{X: c.Min.X + vg.Points(4), Y: y}, "no result")
			continue
		}
		x := trX(v)
		c.FillPolygon(b.colours[i], c.ClipPolygonXY([]vg.Point{
			{X: c.Min.X, Y: y - half}, {X: x, Y: y - half}, {X: x, Y: y + half}, {X: c.Min.X, Y: y + half},
		}))
		c.FillText(style, vg.Point{X: x + vg.Points(4), Y: y}, b.labels[i])
	}
}

// DataRange covers the bars' values; WriteChart sets the axes itself.
func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), 0
	for _, v := range b.values {
		if v > 0 {
			xmin, xmax = math.Min(xmin, v), math.Max(xmax, v)
		}
	}
	if xmax == 0 {
		xmin, xmax = 1, 10
	}
	return xmin, xmax, 0, float64(len(b.values) - 1)
}

// decadeTicks are plot.LogTicks with the decades written out: 100,000
// rather than 1e+05.
type decadeTicks struct{}

// Ticks returns a tick per unit and a label per decade between min and max.
func (decadeTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.LogTicks{Prec: -1}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = thousands(int64(math.Round(ticks[i].Value)))
		}
	}
	return ticks
}

// swatch is a legend entry's coloured square.
type swatch struct{ colour color.Color }

// Thumbnail fills the legend entry's box.
func (s swatch) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.colour, []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y},
	})
}
