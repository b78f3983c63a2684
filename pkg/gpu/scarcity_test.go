package gpu

import (
	"math"
	"testing"
)

func TestWeighByScarcity(t *testing.T) {
	free := map[string]int64{"G2": 7000, "T4": 1000, "V100": 2000, "": 0}
	classes := []WeightedClass{
		{Class{GPUs: 1}, 0.5},
		{Class{GPUs: 1, Products: "T4"}, 0.2},
		{Class{ShareMilli: 500, Products: "T4|V100"}, 0.2},
		{Class{GPUs: 1, Products: "A100"}, 0.1}, // no free capacity on A100 at all
	}
	got := WeighByScarcity(classes, free)
	// 10000 milli free in all; T4 has 1000 of it, T4 or V100 3000.
	want := []float64{0.5, 0.2 * 10, 0.2 * 10.0 / 3, 0.1}
	for i := range want {
		if math.Abs(got[i].Weight-want[i]) > 1e-9 {
			t.Errorf("class %v: weight %v, want %v", got[i].Class, got[i].Weight, want[i])
		}
		if got[i].Class != classes[i].Class {
			t.Errorf("class %d changed: %v, want %v", i, got[i].Class, classes[i].Class)
		}
	}
	if classes[1].Weight != 0.2 {
		t.Errorf("the input was modified: %v", classes[1].Weight)
	}
	// As the rest of the cluster fills, the factor falls to 1.
	got = WeighByScarcity(classes, map[string]int64{"G2": 0, "T4": 1000})
	if got[1].Weight != 0.2 {
		t.Errorf("with only T4 capacity left the T4 class weighs %v, want its plain 0.2", got[1].Weight)
	}

	unlimited := []WeightedClass{{Class{GPUs: 1}, 1}}
	if got := WeighByScarcity(unlimited, free); &got[0] != &unlimited[0] {
		t.Errorf("classes without products were copied")
	}
}

// TestScarcityKeepsRareProductFree: a pod that may run anywhere, choosing
// between the last free GPU of a small node of a rare product and an empty
// 8-GPU node, takes the small node by plain FGD (that node could never host
// the 8-GPU class anyway) and leaves the next pod limited to the rare
// product without room. Weighted by scarcity, the big node is the better
// choice.
func TestScarcityKeepsRareProductFree(t *testing.T) {
	small := NewNodeState(DefaultTopology("T4", 2))
	mustAdd(t, small, Assignment{GPUs: []int{0}})
	big := NewNodeState(DefaultTopology("G2", 8))
	classes := []WeightedClass{
		{Class{GPUs: 8}, 1.0 / 3},
		{Class{GPUs: 1, Products: "T4"}, 1.0 / 3},
		{Class{GPUs: 1}, 1.0 / 3},
	}
	one := Assignment{GPUs: []int{1}}
	delta := func(s *NodeState, product string, cl []WeightedClass) float64 {
		t.Helper()
		free := NonGPU{CPUMilli: -1, MemoryMiB: -1, Product: product}
		d, err := FragmentationDelta(s, one, free, free, cl)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if dSmall, dBig := delta(small, "T4", classes), delta(big, "G2", classes); dSmall >= dBig {
		t.Fatalf("plain FGD: small node %v, big node %v; the premise (small node preferred) does not hold", dSmall, dBig)
	}
	// Three empty G2 nodes and this T4 node are free.
	weighted := WeighByScarcity(classes, map[string]int64{"G2": 24000, "T4": 1000})
	if dSmall, dBig := delta(small, "T4", weighted), delta(big, "G2", weighted); dBig >= dSmall {
		t.Errorf("weighted by scarcity: small node %v, big node %v; want the big node preferred", dSmall, dBig)
	}
}
