package gpumap

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

// sample is a node of each kind: whole GPUs on two NUMA nodes, a MIG GPU
// with a held and a free instance, a shared GPU, and a node without GPUs.
func sample() []Node {
	return []Node{
		{Name: "h100-a", Product: "NVIDIA-H100-80GB-HBM3", GPUs: []GPU{
			{Index: 0, NUMA: 0, Whole: "team-a/train"}, {Index: 1, NUMA: 0},
			{Index: 2, NUMA: 1, Shares: []Share{{Milli: 250, Pod: "team-b/nb-1"}, {Milli: 250, Pod: "team-b/nb-2"}}},
			{Index: 3, NUMA: 1, MIG: true, Slots: []Slot{{Start: 0, Size: 4, Profile: "3g.40gb", Pod: "team-b/infer"}, {Start: 4, Size: 4, Profile: "3g.40gb"}}},
		}},
		{Name: "cpu-0"},
	}
}

func TestWrite(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "GPUs <now>", sample()); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	var titles []string
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, buf.String())
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "title" {
			var s string
			if err := d.DecodeElement(&s, &se); err != nil {
				t.Fatal(err)
			}
			titles = append(titles, s)
		}
	}
	if len(titles) != 4 {
		t.Fatalf("%d GPU cells with a title, want 4: %q", len(titles), titles)
	}
	for i, want := range []string{"whole: team-a/train", "free", "250m: team-b/nb-1\n250m: team-b/nb-2", "MIG 3g.40gb (slices 0-3): team-b/infer\nMIG 3g.40gb (slices 4-7): free"} {
		if !strings.Contains(titles[i], want) {
			t.Errorf("GPU %d's title %q lacks %q", i, titles[i], want)
		}
	}
	for _, want := range []string{"GPUs &lt;now&gt;", "no GPUs", ColorWhole, ColorMIG, ColorShare} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the picture lacks %q", want)
		}
	}
}

// TestCell: cells of one NUMA node sit a cell gap apart, and a NUMA node
// boundary adds a wider gap; rows follow each other.
func TestCell(t *testing.T) {
	nodes := sample()
	c0, c1, c2 := Cell(nodes, 0, 0), Cell(nodes, 0, 1), Cell(nodes, 0, 2)
	if c1.X-c0.X != cellW+cellGap || c2.X-c1.X != cellW+cellGap+numaGap {
		t.Errorf("cells at x %d, %d, %d", c0.X, c1.X, c2.X)
	}
	if w, h := Size(nodes); w < c2.X || h < topY+2*rowH {
		t.Errorf("size %dx%d too small", w, h)
	}
}
