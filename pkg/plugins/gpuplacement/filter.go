package gpuplacement

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/profile"
)

// PreFilter parses the pod's GPU demand once. Pods without GPU demand are
// skipped at every later extension point; a malformed annotation leaves the
// pod Pending with a reason naming the annotation and value.
func (pl *GPUPlacement) PreFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	d, err := kube.ParseDemand(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if d.IsZero() {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if msg := unknownMIGProfile(d.MIG, nodes); msg != "" {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg)
	}
	if pl.observed.firstTime(pod.UID) {
		if c, ok := gpu.ClassOf(d.RequestOn(""), d.CPUMilli, d.MemoryMiB); ok {
			c.Products = d.Products
			pl.mix.Observe(c)
		}
	}
	s := &cycleState{demand: d, picks: map[string]*pick{}}
	if pl.args.ScoringStrategy == FragmentationAware {
		s.classes = pl.classes(ctx, pl.mix.Snapshot())
	}
	cs.Write(stateKey, s)
	return nil, nil
}

// unknownMIGProfile explains a MIG request no node can serve because its
// profile exists nowhere: not in any GPU product Tessera knows and not
// advertised by any node (a typo such as "mig-9g.99gb", or a profile of
// another GPU model). Upstream's resource fit would only say "Insufficient
// nvidia.com/mig-9g.99gb". A profile some node advertises is left to the
// normal checks: new hardware is not refused for being missing from the
// catalog.
func unknownMIGProfile(mig []gpu.MIGRequest, nodes []fwk.NodeInfo) string {
	for _, m := range mig {
		known := false
		example := ""
		for _, p := range gpu.Products() {
			if _, ok := p.Profile(m.Profile); ok {
				known = true
				break
			}
			if example == "" && p.MIGCapable() {
				var names []string
				for _, mp := range p.MIGProfiles {
					names = append(names, mp.Name)
				}
				example = strings.Join(names, ", ") + " on " + p.Name
			}
		}
		if known {
			continue
		}
		resource := v1.ResourceName(gpu.MIGResourceName(m.Profile))
		for _, ni := range nodes {
			if q, ok := ni.Node().Status.Allocatable[resource]; ok && !q.IsZero() {
				known = true
				break
			}
		}
		if !known {
			return fmt.Sprintf("%s: %q is not a MIG profile of any GPU product Tessera knows, and no node advertises it (profiles are <compute>g.<memory>gb of a GPU model, e.g. %s)", resource, m.Profile, example)
		}
	}
	return ""
}

// classes are the demand classes one cycle scores against: the learned
// distribution, each class weighted by how scarce the room left for it in
// the cluster is (see gpu.WeighByScarcity and room).
func (pl *GPUPlacement) classes(ctx context.Context, snap gpu.DistributionSnapshot) []gpu.WeightedClass {
	classes := snap.Classes()
	if len(classes) == 0 {
		return classes
	}
	lister := pl.handle.SnapshotSharedLister()
	if lister == nil {
		return classes
	}
	nodes, err := lister.NodeInfos().List()
	if err != nil {
		return classes
	}
	logger := klog.FromContext(ctx)
	reach, free := pl.room.classRoom(nodes, snap, pl.topologies.epoch.Load(), func(ni fwk.NodeInfo) *kube.NodeGPUs {
		return pl.nodeStateFor(logger, ni)
	})
	return gpu.WeighByScarcity(classes, reach, free)
}

// PreFilterExtensions returns nil: node state is derived from the NodeInfo
// Filter is given, so pods added or removed by preemption's simulation are
// already accounted for.
func (pl *GPUPlacement) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// nodeStateFor returns the node's derived GPU state, from cache when the
// node, its pods and its topology are unchanged.
func (pl *GPUPlacement) nodeStateFor(logger klog.Logger, ni fwk.NodeInfo) *kube.NodeGPUs {
	node := ni.Node()
	topo, key := pl.topologies.forNode(logger, node)
	if s, ok := pl.states.get(node.Name, ni.GetGeneration(), key); ok {
		return s
	}
	pods := make([]*v1.Pod, 0, len(ni.GetPods()))
	for _, pi := range ni.GetPods() {
		pods = append(pods, pi.GetPod())
	}
	s := kube.BuildNodeGPUs(logger, topo, pods, pl.ledger.get)
	pl.states.put(node.Name, ni.GetGeneration(), key, s)
	return s
}

// Filter checks device-level fit: that the node has the exact devices the
// pod needs (free whole GPUs in one domain when required, a legal MIG slot,
// room for the share on one GPU), not merely enough of a count.
func (pl *GPUPlacement) Filter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	s, err := getCycleState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	ns := pl.nodeStateFor(klog.FromContext(ctx), ni)
	if ns.GPUs == nil {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "node has no GPUs")
	}
	if ns.Overbooked {
		return fwk.NewStatus(fwk.Unschedulable, "node's GPUs are over-committed: its pods hold more than the node has (pods placed outside Tessera, or GPUs gone from its topology)")
	}
	req := s.demand.RequestOn(ns.Topology.SingleProfile)
	if profile.LocalityRequired(cs) {
		req.Locality = gpu.LocalityRequired
	}
	if g, ok := profile.GroupOf(cs); ok && req.GPUs > 0 {
		// A pod group's members on one node keep close together.
		if req.Near = pl.groupGPUs(pod, g.Name, ni); len(req.Near) == 0 {
			req.Rest = g.Others * req.GPUs
		}
	}
	a, placement, err := ns.GPUs.Allocate(req)
	if err != nil {
		reason := err.Error()
		if fe, ok := err.(gpu.FitError); ok {
			reason = fe.Reason()
		}
		return fwk.NewStatus(fwk.Unschedulable, reason)
	}
	p := &pick{assignment: a, placement: placement, node: ns, free: freeNonGPU(ni)}
	if pl.args.ScoringStrategy == FragmentationAware && s.demand.ShareMilli > 0 && len(s.classes) > 0 {
		// FGD's choice of device, not only of node (see gpu.BestShare).
		if a, delta, err := ns.GPUs.BestShare(p.assignment, s.demand.ShareMilli, p.free, s.after(p.free), s.classes); err == nil {
			p.assignment, p.raw, p.scored = a, delta, true
		}
	}
	s.setPick(ni.Node().Name, p)
	return nil
}

// after is the node's free CPU and memory once the pod runs there (its
// product does not change).
func (s *cycleState) after(free gpu.NonGPU) gpu.NonGPU {
	return gpu.NonGPU{CPUMilli: free.CPUMilli - s.demand.CPUMilli, MemoryMiB: free.MemoryMiB - s.demand.MemoryMiB, Product: free.Product}
}

// freeNonGPU is the node's unrequested CPU and memory, and its GPU product.
func freeNonGPU(ni fwk.NodeInfo) gpu.NonGPU {
	alloc, req := ni.GetAllocatable(), ni.GetRequested()
	return gpu.NonGPU{
		CPUMilli:  alloc.GetMilliCPU() - req.GetMilliCPU(),
		MemoryMiB: (alloc.GetMemory() - req.GetMemory()) >> 20,
		Product:   ni.Node().Labels[gpu.LabelProduct],
	}
}

// groupGPUs lists the whole GPUs that other members of the pod's group
// (group in the pod's namespace) hold on the node: reserved ones from the
// ledger, bound ones from their assignment annotation.
func (pl *GPUPlacement) groupGPUs(pod *v1.Pod, group string, ni fwk.NodeInfo) []int {
	var out []int
	for _, pi := range ni.GetPods() {
		p := pi.GetPod()
		if p.UID == pod.UID || p.Namespace != pod.Namespace || p.Labels[kube.LabelPodGroup] != group {
			continue
		}
		a, ok := pl.ledger.get(p.UID)
		if !ok {
			var err error
			if a, err = gpu.UnmarshalAssignment(p.Annotations[kube.AnnotationAssignment]); err != nil {
				continue
			}
		}
		out = append(out, a.GPUs...)
	}
	return out
}
