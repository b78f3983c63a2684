package gpuplacement

import (
	"slices"
	"testing"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// TestReachOfFollowsClasses: a node's cached room per class is reused while
// the demand classes are the same and recomputed, in the new storage order,
// once they change — a stale vector would weigh classes by another class's
// room.
func TestReachOfFollowsClasses(t *testing.T) {
	st := gpu.NewNodeState(gpu.DefaultTopology("T4", 4))
	if err := st.Add(gpu.Assignment{GPUs: []int{0}}); err != nil {
		t.Fatal(err)
	}
	ns := &nodeState{state: st}
	free := gpu.NonGPU{CPUMilli: -1, MemoryMiB: -1, Product: "T4"}
	d := gpu.NewDistribution(0)
	d.Observe(gpu.Class{GPUs: 4})
	snap := d.Snapshot()
	if got := ns.reachOf(snap, free); !slices.Equal(got, []int64{0}) {
		t.Errorf("4-GPU class on a node with 3 free GPUs: reach %v, want [0]", got)
	}
	d.Observe(gpu.Class{GPUs: 4}) // weights only: same classes
	if d.Snapshot().Version() != snap.Version() {
		t.Fatalf("premise: the version changed without a new class")
	}
	d.Observe(gpu.Class{GPUs: 2})
	snap = d.Snapshot()
	got := ns.reachOf(snap, free)
	if len(got) != len(snap.Stored()) {
		t.Fatalf("reach has %d values for %d classes", len(got), len(snap.Stored()))
	}
	for i, c := range snap.Stored() {
		want := int64(0)
		if c.GPUs == 2 {
			want = 3000
		}
		if got[i] != want {
			t.Errorf("class %v: reach %d, want %d", c, got[i], want)
		}
	}
}
