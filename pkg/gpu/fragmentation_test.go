package gpu

import (
	"math"
	"testing"
)

func TestFragmentationPackVersusSplit(t *testing.T) {
	// A workload dominated by 1-GPU jobs: two half-GPU shares packed onto
	// one GPU leave a whole GPU for them, split over two GPUs they do not.
	classes := []WeightedClass{{Class{GPUs: 1}, 0.8}, {Class{ShareMilli: 500}, 0.2}}
	topo := DefaultTopology("NVIDIA-H100-PCIe", 2)
	packed := NewNodeState(topo)
	mustAdd(t, packed, Assignment{Shares: []Share{{0, 500}}})
	mustAdd(t, packed, Assignment{Shares: []Share{{0, 500}}})
	split := NewNodeState(topo)
	mustAdd(t, split, Assignment{Shares: []Share{{0, 500}}})
	mustAdd(t, split, Assignment{Shares: []Share{{1, 500}}})
	free := NonGPU{CPUMilli: -1, MemoryMiB: -1}
	fp, fs := packed.Fragmentation(free, classes), split.Fragmentation(free, classes)
	if fp != 0 || fs != 800 {
		t.Errorf("packed %v split %v, want 0 and 800", fp, fs)
	}
	// The same holds for three small shares.
	classes = []WeightedClass{{Class{GPUs: 1}, 0.9}, {Class{ShareMilli: 250}, 0.1}}
	packed, split = NewNodeState(topo), NewNodeState(topo)
	mustAdd(t, packed, Assignment{Shares: []Share{{0, 300}}})
	mustAdd(t, packed, Assignment{Shares: []Share{{0, 300}}})
	mustAdd(t, packed, Assignment{Shares: []Share{{0, 300}}})
	mustAdd(t, split, Assignment{Shares: []Share{{0, 300}}})
	mustAdd(t, split, Assignment{Shares: []Share{{0, 300}}})
	mustAdd(t, split, Assignment{Shares: []Share{{1, 300}}})
	fp, fs = packed.Fragmentation(free, classes), split.Fragmentation(free, classes)
	// packed: the 1-GPU class cannot use GPU 0's 100m (0.9*100), the 250m
	// class cannot either (0.1*100). split: 1-GPU class finds no free GPU
	// (0.9*1100); the 250m class fits both GPUs.
	if math.Abs(fp-100) > 1e-9 || math.Abs(fs-990) > 1e-9 || fp >= fs {
		t.Errorf("packed %v split %v, want 100 and 990", fp, fs)
	}
}

func TestFragmentationCases(t *testing.T) {
	unknown := NonGPU{CPUMilli: -1, MemoryMiB: -1}
	mixed := func() *NodeState {
		s := NewNodeState(mixedTopology()) // plain 0, 1; dynamic 2; static 3 (2x3g)
		mustAdd(t, s, Assignment{Shares: []Share{{1, 400}}})
		mustAdd(t, s, Assignment{MIG: []MIGSlot{{2, "4g.40gb", 0}}})
		return s
	}
	// mixed(): free = 1000 + 600 + 428 + 857 = 2885
	tests := []struct {
		name    string
		state   *NodeState
		free    NonGPU
		classes []WeightedClass
		want    float64
	}{
		{name: "no classes", state: mixed(), free: unknown, want: 0},
		{name: "zero weight", state: mixed(), free: unknown, classes: []WeightedClass{{Class{GPUs: 8}, 0}}, want: 0},
		{
			name:  "full node has nothing to fragment",
			state: func() *NodeState { s := NewNodeState(DefaultTopology(a100, 2)); mustAdd(t, s, whole(0, 1)); return s }(),
			free:  unknown, classes: []WeightedClass{{Class{GPUs: 1}, 1}}, want: 0,
		},
		{
			name:  "one whole GPU: the shared and MIG GPUs are fragments",
			state: mixed(), free: unknown,
			classes: []WeightedClass{{Class{GPUs: 1}, 1}}, want: 600 + 428 + 857,
		},
		{
			name:  "two whole GPUs do not fit: everything is a fragment",
			state: mixed(), free: unknown,
			classes: []WeightedClass{{Class{GPUs: 2}, 1}}, want: 2885,
		},
		{
			name:  "share of 600 fits both plain GPUs",
			state: mixed(), free: unknown,
			classes: []WeightedClass{{Class{ShareMilli: 600}, 1}}, want: 428 + 857,
		},
		{
			name:  "share of 601 fits only the free GPU",
			state: mixed(), free: unknown,
			classes: []WeightedClass{{Class{ShareMilli: 601}, 1}}, want: 600 + 428 + 857,
		},
		{
			name:  "3g fits on the dynamic and static GPUs",
			state: mixed(), free: unknown,
			classes: []WeightedClass{{Class{MIGProfile: "3g.40gb"}, 1}}, want: 1000 + 600,
		},
		{
			name:  "4g fits nowhere",
			state: mixed(), free: unknown,
			classes: []WeightedClass{{Class{MIGProfile: "4g.40gb"}, 1}}, want: 2885,
		},
		{
			name:  "2g fits only on the dynamic GPU",
			state: mixed(), free: unknown,
			classes: []WeightedClass{{Class{MIGProfile: "2g.20gb"}, 1}}, want: 1000 + 600 + 857,
		},
		{
			name:  "CPU too small",
			state: mixed(), free: NonGPU{CPUMilli: 3000, MemoryMiB: -1},
			classes: []WeightedClass{{Class{GPUs: 1, CPUMilli: 4000}, 1}}, want: 2885,
		},
		{
			name:  "CPU enough",
			state: mixed(), free: NonGPU{CPUMilli: 4000, MemoryMiB: -1},
			classes: []WeightedClass{{Class{GPUs: 1, CPUMilli: 4000}, 1}}, want: 600 + 428 + 857,
		},
		{
			name:  "CPU for one share of two: only the emptiest serving GPU counts",
			state: mixed(), free: NonGPU{CPUMilli: 7999, MemoryMiB: -1},
			classes: []WeightedClass{{Class{ShareMilli: 500, CPUMilli: 4000}, 1}}, want: 600 + 428 + 857,
		},
		{
			name:  "CPU for two shares: both serving GPUs count",
			state: mixed(), free: NonGPU{CPUMilli: 8000, MemoryMiB: -1},
			classes: []WeightedClass{{Class{ShareMilli: 500, CPUMilli: 4000}, 1}}, want: 428 + 857,
		},
		{
			name:  "CPU for more pods than free GPUs changes nothing",
			state: mixed(), free: NonGPU{CPUMilli: 40000, MemoryMiB: -1},
			classes: []WeightedClass{{Class{GPUs: 1, CPUMilli: 4000}, 1}}, want: 600 + 428 + 857,
		},
		{
			name:  "memory for one 2-GPU pod on four free GPUs",
			state: NewNodeState(DefaultTopology(a100, 4)), free: NonGPU{CPUMilli: -1, MemoryMiB: 3000},
			classes: []WeightedClass{{Class{GPUs: 2, MemoryMiB: 2048}, 1}}, want: 2000,
		},
		{
			name:  "CPU and memory: the scarcer decides",
			state: NewNodeState(DefaultTopology(a100, 4)), free: NonGPU{CPUMilli: 12000, MemoryMiB: 3000},
			classes: []WeightedClass{{Class{GPUs: 1, CPUMilli: 4000, MemoryMiB: 1024}, 1}}, want: 2000,
		},
		{
			name:  "memory too small",
			state: mixed(), free: NonGPU{CPUMilli: -1, MemoryMiB: 1024},
			classes: []WeightedClass{{Class{ShareMilli: 100, MemoryMiB: 2048}, 1}}, want: 2885,
		},
		{
			name:  "GPU product the class may not use",
			state: mixed(), free: NonGPU{CPUMilli: -1, MemoryMiB: -1, Product: "G2"},
			classes: []WeightedClass{{Class{ShareMilli: 100, Products: "T4|V100"}, 1}}, want: 2885,
		},
		{
			name:  "GPU product the class may use",
			state: mixed(), free: NonGPU{CPUMilli: -1, MemoryMiB: -1, Product: "V100"},
			classes: []WeightedClass{{Class{GPUs: 1, Products: "T4|V100"}, 1}}, want: 600 + 428 + 857,
		},
		{
			name:  "weighted sum",
			state: mixed(), free: unknown,
			classes: []WeightedClass{{Class{GPUs: 1}, 0.5}, {Class{GPUs: 2}, 0.25}, {Class{MIGProfile: "3g.40gb"}, 0.25}},
			want:    0.5*(600+428+857) + 0.25*2885 + 0.25*1600,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.state.Fragmentation(tt.free, tt.classes); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Fragmentation = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFragmentationDelta(t *testing.T) {
	classes := []WeightedClass{{Class{GPUs: 1}, 0.6}, {Class{ShareMilli: 300}, 0.2}, {Class{MIGProfile: "3g.40gb", CPUMilli: 2000}, 0.2}}
	s := NewNodeState(mixedTopology())
	mustAdd(t, s, Assignment{Shares: []Share{{1, 700}}})
	before := s.GPUs()
	free, after := NonGPU{CPUMilli: 8000, MemoryMiB: 65536}, NonGPU{CPUMilli: 1000, MemoryMiB: 65536}

	// A share of 300 fits GPU 1 exactly or breaks up the free GPU 0; the
	// best fit must score lower.
	onShared := Assignment{Shares: []Share{{1, 300}}}
	onFree := Assignment{Shares: []Share{{0, 300}}}
	dShared, err := FragmentationDelta(s, onShared, free, free, classes)
	if err != nil {
		t.Fatal(err)
	}
	dFree, err := FragmentationDelta(s, onFree, free, free, classes)
	if err != nil {
		t.Fatal(err)
	}
	if !(dShared < dFree) {
		t.Errorf("delta on shared GPU %v, on free GPU %v; want the first smaller", dShared, dFree)
	}

	// The delta is F(after) - F(before), computed on a copy.
	for _, a := range []Assignment{onShared, onFree, {MIG: []MIGSlot{{3, "3g.40gb", 4}}}, {MIG: []MIGSlot{{2, "7g.80gb", 0}}}, whole(0)} {
		got, err := FragmentationDelta(s, a, free, after, classes)
		if err != nil {
			t.Fatal(err)
		}
		c := s.Clone()
		mustAdd(t, c, a)
		want := c.Fragmentation(after, classes) - s.Fragmentation(free, classes)
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("delta for %+v = %v, want %v", a, got, want)
		}
	}
	// Less CPU left after the pod makes the CPU-hungry MIG class unplaceable.
	d1, _ := FragmentationDelta(s, whole(0), free, free, classes)
	d2, _ := FragmentationDelta(s, whole(0), free, after, classes)
	if !(d2 > d1) {
		t.Errorf("delta with CPU exhausted %v, not above %v", d2, d1)
	}

	_, err = FragmentationDelta(s, Assignment{Shares: []Share{{1, 301}}}, free, after, classes)
	wantErr(t, err, "gpu 1", "exceeds")
	if got := s.GPUs(); len(got) != len(before) || got[1].SharedMilli != 700 || got[0].Use != UseFree {
		t.Errorf("FragmentationDelta changed the state: %+v", got)
	}
}

// TestFragmentationSeesCPUForSeveralPods is why the CPU for more than one
// pod counts: a pod without GPUs that takes a third of an 8-GPU node's CPU
// leaves room for one pod per GPU under FGD's one-pod test, but not for
// eight pods, so it belongs on a node with CPU to spare for its GPUs.
func TestFragmentationSeesCPUForSeveralPods(t *testing.T) {
	classes := []WeightedClass{{Class{GPUs: 1, CPUMilli: 12000}, 1}}
	eight := NewNodeState(DefaultTopology(a100, 8)) // 96 cores, 12 per GPU
	two := NewNodeState(DefaultTopology(a100, 2))   // 104 cores, 52 per GPU
	cpuPod := func(s *NodeState, cores int64) float64 {
		t.Helper()
		free, after := NonGPU{CPUMilli: cores, MemoryMiB: -1}, NonGPU{CPUMilli: cores - 32000, MemoryMiB: -1}
		d, err := FragmentationDelta(s, Assignment{}, free, after, classes)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d8, d2 := cpuPod(eight, 96000), cpuPod(two, 104000); d8 != 3000 || d2 != 0 {
		t.Errorf("32 cores taken: delta on the 8-GPU node %v, on the 2-GPU node %v; want 3000 and 0", d8, d2)
	}
}

func TestFragmentationDoesNotAllocate(t *testing.T) {
	s, classes := benchmarkNode(t)
	free := NonGPU{CPUMilli: 32000, MemoryMiB: 256000}
	a := Assignment{Shares: []Share{{3, 200}}}
	if n := testing.AllocsPerRun(100, func() { s.Fragmentation(free, classes) }); n != 0 {
		t.Errorf("Fragmentation allocates %v times", n)
	}
	// CPU for one pod of the 8-core classes: the GPUs beyond it are counted.
	short := NonGPU{CPUMilli: 8000, MemoryMiB: 256000}
	if n := testing.AllocsPerRun(100, func() { s.Fragmentation(short, classes) }); n != 0 {
		t.Errorf("Fragmentation short of CPU allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := FragmentationDelta(s, a, free, free, classes); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("FragmentationDelta allocates %v times", n)
	}
}

// benchmarkNode is an 8-GPU A100 node in mixed use (whole, shared, MIG
// static and dynamic) with 20 demand classes.
func benchmarkNode(tb testing.TB) (*NodeState, []WeightedClass) {
	topo := DefaultTopology(a100, 8)
	topo.GPUs[6].MIG = MIGDynamic
	topo.GPUs[7].MIG = MIGStatic
	topo.GPUs[7].Instances = []MIGInstance{{"3g.40gb", 0}, {"2g.20gb", 4}, {"1g.10gb", 6}}
	s := NewNodeState(topo)
	mustAdd(tb, s, whole(0, 1))
	mustAdd(tb, s, Assignment{Shares: []Share{{2, 500}, {3, 250}}})
	mustAdd(tb, s, Assignment{MIG: []MIGSlot{{6, "3g.40gb", 4}, {7, "2g.20gb", 4}}})
	d := NewDistribution(500)
	shapes := []Class{
		{GPUs: 1}, {GPUs: 2}, {GPUs: 4}, {GPUs: 8}, {GPUs: 1, CPUMilli: 8000},
		{ShareMilli: 100}, {ShareMilli: 250}, {ShareMilli: 500}, {ShareMilli: 750}, {ShareMilli: 300, MemoryMiB: 16384},
		{MIGProfile: "1g.10gb"}, {MIGProfile: "1g.20gb"}, {MIGProfile: "2g.20gb"}, {MIGProfile: "3g.40gb"}, {MIGProfile: "4g.40gb"},
		{MIGProfile: "7g.80gb"}, {GPUs: 1, MemoryMiB: 65536}, {ShareMilli: 500, CPUMilli: 4000}, {GPUs: 2, CPUMilli: 16000}, {MIGProfile: "1g.10gb", CPUMilli: 2000},
	}
	for i := 0; i < 400; i++ {
		d.Observe(shapes[(i*7)%len(shapes)])
	}
	classes := d.Snapshot().Classes()
	if len(classes) != 20 {
		tb.Fatalf("%d classes, want 20", len(classes))
	}
	return s, classes
}

func BenchmarkFragmentation(b *testing.B) {
	s, classes := benchmarkNode(b)
	free := NonGPU{CPUMilli: 32000, MemoryMiB: 256000}
	b.ReportAllocs()
	for b.Loop() {
		s.Fragmentation(free, classes)
	}
}

func BenchmarkFragmentationDelta(b *testing.B) {
	s, classes := benchmarkNode(b)
	free, after := NonGPU{CPUMilli: 32000, MemoryMiB: 256000}, NonGPU{CPUMilli: 28000, MemoryMiB: 240000}
	a := Assignment{Shares: []Share{{3, 200}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FragmentationDelta(s, a, free, after, classes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAllocate(b *testing.B) {
	s, _ := benchmarkNode(b)
	reqs := []Request{{GPUs: 2}, {ShareMilli: 300}, {MIG: []MIGRequest{{"1g.10gb", 1}}}}
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range reqs {
			if _, _, err := s.Allocate(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
