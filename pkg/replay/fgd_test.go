package replay

import (
	"math"
	"slices"
	"testing"
)

// TestFGDResults checks the transcription of the FGD artifact's per-seed
// results: each variant's mean must round to the paper's published mean.
func TestFGDResults(t *testing.T) {
	for v, r := range fgdResults {
		if m := Mean(r.PerSeed[:]); math.Abs(m-r.Published) > 0.03 {
			t.Errorf("%s: per-seed mean %.3f, published %.2f", v, m, r.Published)
		}
	}
}

func TestFGDSeeds(t *testing.T) {
	r := fgdResults["default"]
	for _, tc := range []struct {
		seeds []int64
		want  []float64
	}{
		{[]int64{42, 51}, []float64{95.14, 95.28}},
		{[]int64{45}, []float64{95.38}},
		{[]int64{41}, nil},
		{[]int64{42, 52}, nil},
	} {
		if got := r.Seeds(tc.seeds); !slices.Equal(got, tc.want) {
			t.Errorf("seeds %v: %v, want %v", tc.seeds, got, tc.want)
		}
	}
	if d := PairedDiff([]float64{95.5, 95.0}, []float64{95.14, 95.28}); math.Abs(d-0.04) > 1e-9 {
		t.Errorf("PairedDiff = %v, want 0.04", d)
	}
	if n := SeedsAhead([]float64{95.5, 95.0, 96}, []float64{95.14, 95.28, 96}); n != 1 {
		t.Errorf("SeedsAhead = %d, want 1 (a tie is not ahead)", n)
	}
}
