package gang

import (
	"context"
	"testing"

	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
)

// TestLocalityScore: a member scores the nodes holding its group's members
// best, then the nodes that hold the most of the members still to place;
// every node below the best gets at most localityRest. Pods outside groups
// are skipped.
func TestLocalityScore(t *testing.T) {
	pl := &Gang{mgr: gangcore.NewManager(gangcore.Config{})}
	pl.mgr.SetGroup(gangcore.Group{Key: gangcore.NewGroupKey("team", "g"), MinMember: 4})
	placed := running("placed", "team", "n-sibling", 0, 0, 1)
	placed.Labels = map[string]string{PodGroupLabel: "g"}
	pending := []string{"a", "b", "c"}
	for _, name := range pending {
		pl.mgr.AddPod(refOf(member(name, "g", 2)))
	}
	pl.mgr.AddPod(refOf(placed))

	nodes := []fwk.NodeInfo{
		nodeInfo(h100Node("n-sibling", "8"), placed),
		nodeInfo(h100Node("n-empty", "8")),                                                  // room for all 3
		nodeInfo(h100Node("n-small", "8"), running("x", "other", "n-small", 0, 0, 1, 2, 3)), // room for 2
	}
	pod := member("a", "g", 2)
	cs := framework.NewCycleState()
	if st := pl.PreScore(context.Background(), cs, pod, nodes); !st.IsSuccess() {
		t.Fatalf("PreScore: %v", st)
	}
	scores := make(fwk.NodeScoreList, len(nodes))
	for i, ni := range nodes {
		s, st := pl.Score(context.Background(), cs, pod, ni)
		if !st.IsSuccess() {
			t.Fatal(st)
		}
		scores[i] = fwk.NodeScore{Name: ni.Node().Name, Score: s}
	}
	pl.NormalizeScore(context.Background(), cs, pod, scores)
	got := map[string]int64{}
	for _, s := range scores {
		got[s.Name] = s.Score
	}
	if got["n-sibling"] != 100 || got["n-empty"] <= got["n-small"] || got["n-empty"] > localityRest {
		t.Errorf("scores %v: want the sibling's node 100, then the node with room for all three above the one with room for two, at most %d", got, localityRest)
	}

	// The first member of a group: the node that takes the whole group wins.
	first := &Gang{mgr: gangcore.NewManager(gangcore.Config{})}
	first.mgr.SetGroup(gangcore.Group{Key: gangcore.NewGroupKey("team", "g"), MinMember: 3})
	for _, name := range pending {
		first.mgr.AddPod(refOf(member(name, "g", 2)))
	}
	cs = framework.NewCycleState()
	if st := first.PreScore(context.Background(), cs, pod, nodes[1:]); !st.IsSuccess() {
		t.Fatalf("PreScore: %v", st)
	}
	if s, _ := localityOf(cs); s.raw["n-empty"] != 3 || s.raw["n-small"] != 2 {
		t.Errorf("raw locality %v, want n-empty 3 (all members fit), n-small 2", s.raw)
	}

	// Not a member: skipped.
	plain := member("plain", "g", 1)
	plain.Labels = nil
	if st := pl.PreScore(context.Background(), framework.NewCycleState(), plain, nodes); !st.IsSkip() {
		t.Errorf("PreScore for a pod outside groups: %v, want Skip", st)
	}
}
