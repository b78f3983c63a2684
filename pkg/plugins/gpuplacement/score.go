package gpuplacement

import (
	"context"
	"math"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
)

// optimalEpsilon is the fragmentation increase (in expected milli-GPUs)
// below which two nodes count as equally good.
const optimalEpsilon = 0.5

// PreScore prepares scoring. A pod without GPU demand is scored only by
// FragmentationAware, and only once GPU demand has been observed: its CPU and
// memory can strand a node's GPUs (no CPU left for the GPU pods that would
// use them), so it is steered to where it strands the least — preferably
// nodes without GPUs. In a cluster that never saw a GPU pod this costs
// nothing.
func (pl *GPUPlacement) PreScore(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if _, err := getCycleState(cs); err == nil {
		return nil
	}
	if pl.args.ScoringStrategy != FragmentationAware {
		return fwk.NewStatus(fwk.Skip)
	}
	snap := pl.mix.Snapshot()
	if snap.Observations() == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	d, err := kube.ParseDemand(pod)
	if err != nil || !d.IsZero() {
		return fwk.NewStatus(fwk.Skip)
	}
	cs.Write(stateKey, &cycleState{demand: d, classes: pl.classes(ctx, snap), picks: map[string]*pick{}})
	return nil
}

// Score computes each node's raw placement value; NormalizeScore turns the
// raw values of all nodes into 0-100 and mixes in topology locality.
//
//   - FragmentationAware: the increase of the node's expected unusable GPU
//     capacity (FGD) caused by the chosen devices; smaller is better.
//   - BinPack: the node's GPU utilisation after placement; higher is better.
//   - Spread: the opposite of BinPack.
func (pl *GPUPlacement) Score(ctx context.Context, cs fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := getCycleState(cs)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	p := s.getPick(ni.Node().Name)
	if p == nil {
		if !s.demand.IsZero() {
			return 0, nil
		}
		// A pod without GPU demand: Filter did not run; the pick holds no
		// devices, only the node's state and free CPU/memory.
		p = &pick{node: pl.nodeStateFor(klog.FromContext(ctx), ni), free: freeNonGPU(ni)}
		s.setPick(ni.Node().Name, p)
		if p.node.GPUs == nil {
			// No GPUs on the node: nothing to strand.
			return 0, nil
		}
	}
	switch pl.args.ScoringStrategy {
	case FragmentationAware:
		if p.scored {
			return 0, nil
		}
		delta, err := gpu.FragmentationDelta(p.node.GPUs, p.assignment, p.free, s.after(p.free), s.classes)
		if err != nil {
			return 0, fwk.AsStatus(err)
		}
		p.raw = delta
	default:
		capacity := p.node.GPUs.Capacity()
		if capacity > 0 {
			p.raw = float64(p.node.GPUs.UsedMilli()+p.assignment.Milli()) / float64(capacity)
		}
	}
	return 0, nil
}

// ScoreExtensions returns the plugin itself for NormalizeScore.
func (pl *GPUPlacement) ScoreExtensions() fwk.ScoreExtensions { return pl }

// packingTieBreak is how much of the full value GPU packing decides among
// the nodes whose fragmentation increase is the smallest: such a node gets
// 1 - packingTieBreak x (its fraction of GPU capacity left free after the
// pod), so the fullest wins, and an empty node keeps its GPUs whole for a
// big request later. Small, so that other plugins' preferences (node
// affinity, topology spreading) still decide among equally good nodes.
// Measured in docs/benchmarks.md ("Where the scoring constants come from").
const packingTieBreak = 0.05

// freeAfter is the fraction of the node's GPU capacity that is free once the
// pod holds its devices there: 0 for a node without GPUs, where a pod
// without GPU demand strands nothing.
func (p *pick) freeAfter() float64 {
	if p.node == nil || p.node.GPUs == nil {
		return 0
	}
	c := p.node.GPUs.Capacity()
	if c <= 0 {
		return 0
	}
	return float64(c-p.node.GPUs.UsedMilli()-p.assignment.Milli()) / float64(c)
}

// NormalizeScore maps the raw values of all scored nodes onto 0-100 and
// mixes in locality for multi-GPU pods: TopologyWeight percent of the score
// is 100 for GPUs in one NVLink domain, 50 for one NUMA node, 0 for
// scattered GPUs.
//
// FragmentationAware is tiered: every node whose fragmentation increase is
// the smallest (within optimalEpsilon) gets nearly the full value, GPU
// packing deciding among them (see packingTieBreak), every other node at
// most half of it, scaled by how much worse it is. With the plugin's
// weight this keeps FGD's choice of node — the smallest increase — out of
// reach of the default plugins' CPU/memory spreading, which only breaks ties
// among equally good nodes. (A plain min-max scaling lets one outlier node
// squeeze all others into a few points, which the default scorers then
// override; docs/benchmarks.md has what that cost.)
func (pl *GPUPlacement) NormalizeScore(_ context.Context, cs fwk.CycleState, _ *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	s, err := getCycleState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range scores {
		if p := s.getPick(scores[i].Name); p != nil {
			lo, hi = math.Min(lo, p.raw), math.Max(hi, p.raw)
		}
	}
	multiGPU := s.demand.WholeGPUs > 1
	tw := float64(*pl.args.TopologyWeight)
	if !multiGPU {
		tw = 0
	}
	for i := range scores {
		p := s.getPick(scores[i].Name)
		if p == nil {
			scores[i].Score = 0
			continue
		}
		value := 1.0
		switch {
		case pl.args.ScoringStrategy == FragmentationAware:
			if p.raw > lo+optimalEpsilon {
				value = 0.5 * (1 - (p.raw-lo)/(hi-lo))
			} else {
				value = 1 - packingTieBreak*p.freeAfter()
			}
		case hi > lo:
			value = (p.raw - lo) / (hi - lo)
			if pl.args.ScoringStrategy == Spread {
				value = 1 - value
			}
		}
		locality := 0.0
		switch p.placement.Level {
		case gpu.LocalityDomain:
			locality = 1
		case gpu.LocalityNUMA:
			locality = 0.5
		}
		scores[i].Score = int64(math.Round(value*(100-tw) + locality*tw))
	}
	return nil
}
