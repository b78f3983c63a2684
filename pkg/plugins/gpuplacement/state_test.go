package gpuplacement

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
)

// TestRoomFollowsCluster: the cluster-wide room per class is re-derived for
// exactly the nodes that changed, drops nodes that left, and starts over
// when the classes or the published topologies change — a stale sum would
// weigh classes by room that no longer exists.
func TestRoomFollowsCluster(t *testing.T) {
	states := map[string]*gpu.NodeState{}
	infos := map[string]*framework.NodeInfo{}
	addNode := func(name string, gpus int, used ...int) {
		st := gpu.NewNodeState(gpu.DefaultTopology("T4", gpus))
		if len(used) > 0 {
			if err := st.Add(gpu.Assignment{GPUs: used}); err != nil {
				t.Fatal(err)
			}
		}
		states[name] = st
		ni := infos[name]
		if ni == nil {
			ni = framework.NewNodeInfo()
			infos[name] = ni
		}
		ni.SetNode(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}) // a new generation
	}
	var derived []string
	stateOf := func(ni fwk.NodeInfo) *kube.NodeGPUs {
		derived = append(derived, ni.Node().Name)
		return &kube.NodeGPUs{GPUs: states[ni.Node().Name]}
	}
	list := func() []fwk.NodeInfo {
		var out []fwk.NodeInfo
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for n := range infos {
				if !yield(n) {
					return
				}
			}
		}) {
			out = append(out, infos[name])
		}
		return out
	}
	d := gpu.NewDistribution(0)
	d.Observe(gpu.Class{GPUs: 4})
	d.Observe(gpu.Class{GPUs: 1})
	var r room
	check := func(step string, epoch uint64, wantFree int64, want map[int]int64, wantDerived ...string) {
		t.Helper()
		derived = nil
		snap := d.Snapshot()
		reach, free := r.classRoom(list(), snap, epoch, stateOf)
		if free != wantFree {
			t.Errorf("%s: free %d, want %d", step, free, wantFree)
		}
		for i, c := range snap.Classes() {
			if reach[i] != want[c.GPUs] {
				t.Errorf("%s: class %v has room %d, want %d", step, c.Class, reach[i], want[c.GPUs])
			}
		}
		slices.Sort(derived)
		if !slices.Equal(derived, wantDerived) {
			t.Errorf("%s: derived %v, want %v", step, derived, wantDerived)
		}
	}
	addNode("a", 4)
	addNode("b", 2, 0)
	check("first cycle", 0, 5000, map[int]int64{4: 4000, 1: 5000}, "a", "b")
	check("nothing changed", 0, 5000, map[int]int64{4: 4000, 1: 5000})
	addNode("a", 4, 0) // a pod went to a
	check("one node changed", 0, 4000, map[int]int64{4: 0, 1: 4000}, "a")
	delete(infos, "b")
	check("node b left", 0, 3000, map[int]int64{4: 0, 1: 3000})
	d.Observe(gpu.Class{GPUs: 2}) // a new class: new storage order
	check("new class", 0, 3000, map[int]int64{4: 0, 2: 3000, 1: 3000}, "a")
	check("topology changed", 1, 3000, map[int]int64{4: 0, 2: 3000, 1: 3000}, "a")
}
