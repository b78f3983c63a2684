// Package gpumap draws a cluster's GPUs as a picture a person opens in a
// browser: one row per node, one cell per GPU, NUMA nodes apart, whole GPUs
// filled, MIG GPUs cut into their eight memory slices with each instance's
// slices marked, shared GPUs filled in proportion to the milli-GPUs held.
// Hovering a cell names its pods. It is pure drawing: callers (tessera
// explain cluster, the playground) say what holds what.
package gpumap

import (
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
)

// Node is one row of the picture.
type Node struct {
	Name    string
	Product string
	GPUs    []GPU
}

// GPU is one cell.
type GPU struct {
	Index int
	// NUMA is the GPU's host NUMA node (-1 unknown); a gap separates GPUs
	// of different NUMA nodes.
	NUMA int
	// Domain is its NVLink/NVSwitch domain, shown on hover.
	Domain string
	// MIG is set for a MIG-enabled GPU: the cell shows its slices.
	MIG bool
	// Whole names the pod holding the whole GPU, "" if none.
	Whole string
	// Slots are the MIG instances: held ones name their pod; free
	// instances that exist (laid out by an admin) have Pod "".
	Slots []Slot
	// Shares are the pods sharing the GPU.
	Shares []Share
}

// Slot is one MIG instance: Size memory slices from Start (of 8).
type Slot struct {
	Start, Size int
	Profile     string
	Pod         string
}

// Share is a pod's share of a GPU, in milli-GPUs.
type Share struct {
	Milli int
	Pod   string
}

// Colours of the cells, also what a test of the rendered picture samples.
const (
	ColorFree  = "#e2e8f0"
	ColorWhole = "#2b6cb0"
	ColorMIG   = "#d69e2e"
	ColorShare = "#38a169"
	// ColorSlot outlines a MIG instance that exists but is not held.
	ColorSlot = "#975a16"
)

// Geometry of the picture, in pixels.
const (
	cellW    = 56
	cellH    = 40
	cellGap  = 6
	numaGap  = 22
	labelW   = 260
	rowH     = cellH + 24
	topY     = 64
	marginX  = 16
	slotsPer = 8
)

// Rect is a cell's place in the picture, in pixels from the top left.
type Rect struct{ X, Y, W, H int }

// Cell returns where GPU g of node n (indexes into Node.GPUs) is drawn.
func Cell(nodes []Node, n, g int) Rect {
	x := marginX + labelW
	gpus := nodes[n].GPUs
	for i := 0; i < g; i++ {
		x += cellW + cellGap
		if gpus[i+1].NUMA != gpus[i].NUMA {
			x += numaGap
		}
	}
	return Rect{X: x, Y: topY + n*rowH, W: cellW, H: cellH}
}

// Size is the picture's width and height.
func Size(nodes []Node) (int, int) {
	w := marginX + labelW + 8*(cellW+cellGap) + numaGap + marginX
	for n := range nodes {
		if k := len(nodes[n].GPUs); k > 0 {
			r := Cell(nodes, n, k-1)
			w = max(w, r.X+r.W+marginX)
		}
	}
	return max(w, 900), topY + len(nodes)*rowH + 16
}

// Write draws the nodes as a standalone SVG document.
func Write(w io.Writer, title string, nodes []Node) error {
	width, height := Size(nodes)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", marginX, esc(title))
	legend := []struct{ color, what string }{{ColorWhole, "whole GPU"}, {ColorMIG, "MIG instance held"}, {"", "MIG instance free"}, {ColorShare, "shared (milli-GPUs held)"}, {ColorFree, "free"}}
	x := marginX
	for _, l := range legend {
		if l.color == "" {
			fmt.Fprintf(&b, `<rect x="%d" y="36" width="14" height="14" fill="%s" stroke="%s" stroke-width="1.5" stroke-dasharray="3,2"/>`, x, ColorFree, ColorSlot)
		} else {
			fmt.Fprintf(&b, `<rect x="%d" y="36" width="14" height="14" fill="%s" stroke="#4a5568" stroke-width="0.5"/>`, x, l.color)
		}
		fmt.Fprintf(&b, `<text x="%d" y="48">%s</text>`+"\n", x+20, esc(l.what))
		x += 30 + 8*len(l.what)
	}
	for n, node := range nodes {
		y := topY + n*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text><text x="%d" y="%d" fill="#4a5568" font-size="11">%s</text>`+"\n",
			marginX, y+16, esc(node.Name), marginX, y+32, esc(node.Product))
		if len(node.GPUs) == 0 {
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#718096">no GPUs</text>`+"\n", marginX+labelW, y+24)
		}
		for g := range node.GPUs {
			drawGPU(&b, Cell(nodes, n, g), &node.GPUs[g])
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func drawGPU(b *strings.Builder, r Rect, g *GPU) {
	var hover []string
	hover = append(hover, fmt.Sprintf("GPU %d, NUMA node %d", g.Index, g.NUMA))
	if g.Domain != "" {
		hover[0] += ", " + g.Domain
	}
	fmt.Fprintf(b, `<g><rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#4a5568" stroke-width="1"/>`, r.X, r.Y, r.W, r.H, ColorFree)
	switch {
	case g.Whole != "":
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, r.X, r.Y, r.W, r.H, ColorWhole)
		hover = append(hover, "whole: "+g.Whole)
	case g.MIG:
		sw := float64(r.W) / slotsPer
		for i := 1; i < slotsPer; i++ {
			fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#a0aec0" stroke-width="0.5"/>`, float64(r.X)+sw*float64(i), r.Y, float64(r.X)+sw*float64(i), r.Y+r.H)
		}
		slots := append([]Slot(nil), g.Slots...)
		sort.Slice(slots, func(i, j int) bool { return slots[i].Start < slots[j].Start })
		for _, s := range slots {
			x0 := float64(r.X) + sw*float64(s.Start)
			w := sw * float64(s.Size)
			if s.Pod != "" {
				fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="#ffffff" stroke-width="1"/>`, x0, r.Y, w, r.H, ColorMIG)
				hover = append(hover, fmt.Sprintf("MIG %s (slices %d-%d): %s", s.Profile, s.Start, s.Start+s.Size-1, s.Pod))
			} else {
				fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="3,2"/>`, x0+1, r.Y+1, w-2, r.H-2, ColorSlot)
				hover = append(hover, fmt.Sprintf("MIG %s (slices %d-%d): free", s.Profile, s.Start, s.Start+s.Size-1))
			}
		}
		if len(slots) == 0 {
			hover = append(hover, "MIG enabled, no instance")
		}
	case len(g.Shares) > 0:
		milli := 0
		for _, s := range g.Shares {
			milli += s.Milli
			hover = append(hover, fmt.Sprintf("%dm: %s", s.Milli, s.Pod))
		}
		h := r.H * min(milli, 1000) / 1000
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, r.X, r.Y+r.H-h, r.W, h, ColorShare)
	default:
		hover = append(hover, "free")
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10" fill="#1a202c">%d</text>`, r.X+3, r.Y+r.H+12, g.Index)
	fmt.Fprintf(b, `<title>%s</title></g>`+"\n", esc(strings.Join(hover, "\n")))
}

func esc(s string) string { return html.EscapeString(s) }
