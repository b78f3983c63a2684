package replay

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Reference is a published result to mark on the plot, e.g. FGD's
// allocation ratio at arrived = 100 %.
type Reference struct {
	Label     string
	Allocated float64
}

// WritePlot draws the allocation curves (arrived % → allocated %) of the
// given results on one chart, with the ideal (allocated = arrived) as a
// dashed line and the references as points at arrived = 100 %, and writes it
// as a PNG.
func WritePlot(path, title string, results []*Result, refs []Reference) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "GPU requested / capacity (arrived, %)"
	p.Y.Label.Text = "GPU allocated / capacity (%)"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 130, 0, 100
	p.Add(plotter.NewGrid())

	ideal := plotter.XYs{{X: 0, Y: 0}, {X: 100, Y: 100}, {X: 130, Y: 100}}
	idealLine, err := plotter.NewLine(ideal)
	if err != nil {
		return err
	}
	idealLine.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	idealLine.Color = color.Gray{Y: 150}
	p.Add(idealLine)
	p.Legend.Add("ideal", idealLine)

	colors := []color.Color{
		color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
		color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	}
	for i, r := range results {
		xys := make(plotter.XYs, 0, len(r.Curve))
		for _, pt := range r.Curve {
			xys = append(xys, plotter.XY{X: float64(pt.Arrived), Y: pt.Allocated})
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = colors[i%len(colors)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (%.1f%% at 100%%)", r.Profile, r.AllocAt100), l)
	}
	for i, ref := range refs {
		s, err := plotter.NewScatter(plotter.XYs{{X: 100, Y: ref.Allocated}})
		if err != nil {
			return err
		}
		s.GlyphStyle.Shape = draw.CrossGlyph{}
		s.GlyphStyle.Radius = vg.Points(4)
		s.GlyphStyle.Color = colors[(len(results)+i)%len(colors)]
		p.Add(s)
		p.Legend.Add(fmt.Sprintf("%s (%.1f%%)", ref.Label, ref.Allocated), s)
	}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(10)
	p.Legend.YOffs = vg.Points(10)
	return p.Save(7*vg.Inch, 5*vg.Inch, path)
}
