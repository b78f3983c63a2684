package gpu

import (
	"math"
	"testing"
)

func TestWeighByScarcity(t *testing.T) {
	classes := []WeightedClass{
		{Class{GPUs: 1}, 0.4},
		{Class{GPUs: 1, Products: "T4"}, 0.2},
		{Class{ShareMilli: 500}, 0.2},
		{Class{GPUs: 8}, 0.1},
		{Class{GPUs: 1, Products: "A100"}, 0.1},
	}
	// 10000 milli free in all: everywhere usable for shares, 1000 of it for
	// the T4 class, 2500 for whole GPUs, none for 8 GPUs or A100.
	reach := []int64{2500, 1000, 10000, 0, 0}
	got := WeighByScarcity(classes, reach, 10000)
	want := []float64{0.4 * 4, 0.2 * 10, 0.2, 0.1, 0.1}
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
	// A full cluster leaves the weights alone.
	got = WeighByScarcity(classes, make([]int64, len(classes)), 0)
	for i := range got {
		if got[i].Weight != classes[i].Weight {
			t.Errorf("full cluster: class %v weighs %v, want %v", got[i].Class, got[i].Weight, classes[i].Weight)
		}
	}
}

func TestReach(t *testing.T) {
	s := NewNodeState(DefaultTopology("T4", 4))
	mustAdd(t, s, Assignment{GPUs: []int{0}})
	mustAdd(t, s, Assignment{Shares: []Share{{GPU: 1, Milli: 700}}})
	// Free: GPU 1 300 milli, GPUs 2 and 3 whole: 2300 in all.
	classes := []Class{
		{GPUs: 1},
		{GPUs: 2},
		{GPUs: 3},
		{ShareMilli: 200},
		{ShareMilli: 500},
		{GPUs: 1, Products: "V100"},
		{GPUs: 1, CPUMilli: 9000},
	}
	free := NonGPU{CPUMilli: 8000, MemoryMiB: -1, Product: "T4"}
	got := s.Reach(free, classes, nil)
	want := []int64{2000, 2000, 0, 2300, 2000, 0, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("class %v: reach %d, want %d", classes[i], got[i], want[i])
		}
	}
	// Reach and Fragmentation agree: reach + fragmentation = free capacity.
	for i, c := range classes {
		f := s.Fragmentation(free, []WeightedClass{{c, 1}})
		if got[i]+int64(f) != 2300 {
			t.Errorf("class %v: reach %d + fragmentation %v != 2300", c, got[i], f)
		}
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
	big := NewNodeState(DefaultTopology("G2", 8))
	if dSmall, dBig := delta(small, "T4", classes), delta(big, "G2", classes); dSmall >= dBig {
		t.Fatalf("plain FGD: small node %v, big node %v; the premise (small node preferred) does not hold", dSmall, dBig)
	}
	// The cluster: this T4 node and three empty G2 nodes.
	plain := make([]Class, len(classes))
	for i := range classes {
		plain[i] = classes[i].Class
	}
	reach := make([]int64, len(classes))
	free := small.FreeMilli()
	for i, r := range small.Reach(NonGPU{CPUMilli: -1, MemoryMiB: -1, Product: "T4"}, plain, nil) {
		reach[i] += r
	}
	for range 3 {
		free += big.FreeMilli()
		for i, r := range big.Reach(NonGPU{CPUMilli: -1, MemoryMiB: -1, Product: "G2"}, plain, nil) {
			reach[i] += r
		}
	}
	weighted := WeighByScarcity(classes, reach, free)
	if dSmall, dBig := delta(small, "T4", weighted), delta(big, "G2", weighted); dBig >= dSmall {
		t.Errorf("weighted by scarcity: small node %v, big node %v; want the big node preferred", dSmall, dBig)
	}
}
