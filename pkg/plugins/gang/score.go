package gang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/tessera-sched/tessera/pkg/kube"
)

// Gang locality: a group's members talk to each other every step, so by
// default a group is packed into as few nodes as the cluster allows. A
// member's Score prefers, first, the nodes that already hold members of its
// group (assumed or bound) and then the nodes that can hold the most of the
// members still without a place (copies of this member that fit the node's
// free CPU, memory and GPUs). The first member therefore goes where the
// group fits whole, if anywhere, and the others follow it.
//
// The score is tiered like GPUPlacement's: the best nodes get 100, every
// other node at most localityRest of it. With Gang's weight in the shipped
// profiles (twice GPUPlacement's) locality comes first and GPUPlacement's
// fragmentation decides among nodes of equal locality: a group is kept
// together even where a lone pod would have packed a fuller node.

// localityRest is the most a node below the best locality scores, so that
// the locality tier outweighs GPUPlacement's whole score range.
const localityRest = 40

const scoreKey fwk.StateKey = Name + "/score"

// localityState is the member's raw locality per feasible node.
type localityState struct {
	raw map[string]int64
}

func (s *localityState) Clone() fwk.StateData { return s }

// PreScore computes each feasible node's locality for a group member; pods
// outside groups, and members of groups of one, are skipped.
func (pl *Gang) PreScore(_ context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	key := groupKeyOf(pod)
	if key == "" {
		return fwk.NewStatus(fwk.Skip)
	}
	pending, _ := pl.mgr.Pending(key)
	remaining := int64(max(len(pending), 1))
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	s := &localityState{raw: make(map[string]int64, len(nodes))}
	placed := false
	for _, ni := range nodes {
		siblings := int64(0)
		for _, pi := range ni.GetPods() {
			if p := pi.GetPod(); p.UID != pod.UID && groupKeyOf(p) == key {
				siblings++
			}
		}
		placed = placed || siblings > 0
		// Siblings outweigh any room: remaining+1 per sibling.
		s.raw[ni.Node().Name] = siblings*(remaining+1) + min(remaining, copiesThatFit(ni, reqs))
	}
	if !placed && remaining <= 1 {
		return fwk.NewStatus(fwk.Skip)
	}
	cs.Write(scoreKey, s)
	return nil
}

// copiesThatFit is how many pods with the given requests fit the node's
// unrequested CPU, memory and whole GPUs at once (the scheduler's counts;
// device-level fit is GPUPlacement's Filter).
func copiesThatFit(ni fwk.NodeInfo, reqs v1.ResourceList) int64 {
	alloc, used := ni.GetAllocatable(), ni.GetRequested()
	n := int64(-1)
	limit := func(free, each int64) {
		if each <= 0 {
			return
		}
		if c := max(free, 0) / each; n < 0 || c < n {
			n = c
		}
	}
	limit(alloc.GetMilliCPU()-used.GetMilliCPU(), reqs.Cpu().MilliValue())
	limit(alloc.GetMemory()-used.GetMemory(), reqs.Memory().Value())
	if q, ok := reqs[kube.ResourceGPU]; ok {
		limit(alloc.GetScalarResources()[kube.ResourceGPU]-used.GetScalarResources()[kube.ResourceGPU], q.Value())
	}
	if n < 0 {
		return 0
	}
	return n
}

// Score returns the member's raw locality on the node; NormalizeScore
// scales it.
func (pl *Gang) Score(_ context.Context, cs fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := localityOf(cs)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	return s.raw[ni.Node().Name], nil
}

// ScoreExtensions returns the plugin itself for NormalizeScore.
func (pl *Gang) ScoreExtensions() fwk.ScoreExtensions { return pl }

// NormalizeScore maps the raw locality onto 0-100: the best nodes 100,
// the others at most localityRest, in proportion.
func (pl *Gang) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	best := int64(0)
	for _, s := range scores {
		best = max(best, s.Score)
	}
	for i := range scores {
		switch {
		case best == 0:
		case scores[i].Score == best:
			scores[i].Score = fwk.MaxNodeScore
		default:
			scores[i].Score = scores[i].Score * localityRest / best
		}
	}
	return nil
}

func localityOf(cs fwk.CycleState) (*localityState, error) {
	d, err := cs.Read(scoreKey)
	if err != nil {
		return nil, err
	}
	s, ok := d.(*localityState)
	if !ok {
		return nil, fmt.Errorf("%s: unexpected cycle state %T", Name, d)
	}
	return s, nil
}

var (
	_ fwk.PreScorePlugin = &Gang{}
	_ fwk.ScorePlugin    = &Gang{}
)
