// Package gpuplacement is the GPUPlacement scheduler plugin: it chooses the
// node and the exact devices (whole GPUs, a MIG slot, or a share of one GPU)
// for pods that ask for GPUs, keeping multi-GPU pods inside one interconnect
// domain and the cluster unfragmented.
//
// This package is the framework adapter; the GPU model, allocation and
// fragmentation scoring live in pkg/gpu. All state is derived: a node's GPU
// state comes from its topology (NodeGPUTopology or GPU Feature Discovery
// labels) and the pods on it (their tessera.dev/gpu-assignment annotations,
// or the plugin's reservations for pods still in flight), so a restarted
// scheduler rebuilds it from the API server.
package gpuplacement

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// Name is the plugin's name in the registry and in scheduler configurations.
const Name = "GPUPlacement"

const stateKey fwk.StateKey = Name

// optimalEpsilon is the fragmentation increase (in expected milli-GPUs)
// below which two nodes count as equally good.
const optimalEpsilon = 0.5

// GPUPlacement places GPU pods at device level.
type GPUPlacement struct {
	handle     fwk.Handle
	args       *Args
	topologies *topologies
	ledger     *ledger
	states     *stateCache
	demand     *gpu.Distribution
	observed   *observedSet
	metrics    *nodeMetrics
	room       room
}

var (
	_ fwk.PreFilterPlugin   = &GPUPlacement{}
	_ fwk.FilterPlugin      = &GPUPlacement{}
	_ fwk.PreScorePlugin    = &GPUPlacement{}
	_ fwk.ScorePlugin       = &GPUPlacement{}
	_ fwk.ReservePlugin     = &GPUPlacement{}
	_ fwk.BindPlugin        = &GPUPlacement{}
	_ fwk.EnqueueExtensions = &GPUPlacement{}
	_ fwk.SignPlugin        = &GPUPlacement{}
)

// New builds the plugin from validated args; invalid args fail scheduler
// start-up with an error naming the field. It watches NodeGPUTopology
// objects (when served) and pod deletions until ctx ends.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := DecodeArgs(obj)
	if err != nil {
		return nil, err
	}
	pl := &GPUPlacement{
		handle:     h,
		args:       args,
		topologies: newTopologies(ctx, h.KubeConfig()),
		ledger:     newLedger(),
		states:     &stateCache{entries: map[string]cachedState{}},
		demand:     gpu.NewDistribution(int(*args.DemandHalfLife)),
		observed:   newObservedSet(100000),
		metrics:    newNodeMetrics(),
	}
	if f := h.SharedInformerFactory(); f != nil {
		// Reservations end with the pod; the annotation carries the
		// assignment from then on.
		_, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			DeleteFunc: func(obj any) {
				if pod, ok := podOf(obj); ok {
					pl.ledger.forget(pod.UID)
				}
			},
		})
		if err != nil {
			return nil, err
		}
		_, err = f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			DeleteFunc: func(obj any) {
				if node, ok := obj.(*v1.Node); ok {
					pl.states.forget(node.Name)
					pl.topologies.forget(node.Name)
					pl.metrics.forget(node.Name)
				}
			},
		})
		if err != nil {
			return nil, err
		}
		go pl.metrics.run(ctx, pl, f)
	}
	return pl, nil
}

// Name returns the plugin name.
func (pl *GPUPlacement) Name() string { return Name }

// cycleState is what GPUPlacement keeps for one pod's scheduling cycle.
type cycleState struct {
	demand  *demand
	classes []gpu.WeightedClass

	mu sync.Mutex
	// picks holds, per feasible node, the devices Filter chose and the
	// node's state, for Score and Reserve.
	picks map[string]*pick
}

type pick struct {
	assignment gpu.Assignment
	placement  gpu.Placement
	state      *nodeState
	free       gpu.NonGPU
	raw        float64
	// scored is set when Filter already computed raw.
	scored bool
}

// Clone shares the demand (read-only) and copies the picks.
func (s *cycleState) Clone() fwk.StateData {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &cycleState{demand: s.demand, classes: s.classes, picks: make(map[string]*pick, len(s.picks))}
	for k, v := range s.picks {
		c.picks[k] = v
	}
	return c
}

func (s *cycleState) setPick(node string, p *pick) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.picks[node] = p
}

func (s *cycleState) getPick(node string) *pick {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.picks[node]
}

func getCycleState(cs fwk.CycleState) (*cycleState, error) {
	d, err := cs.Read(stateKey)
	if err != nil {
		return nil, err
	}
	s, ok := d.(*cycleState)
	if !ok {
		return nil, fmt.Errorf("%s: unexpected cycle state %T", Name, d)
	}
	return s, nil
}

// PreFilter parses the pod's GPU demand once. Pods without GPU demand are
// skipped at every later extension point; a malformed annotation leaves the
// pod Pending with a reason naming the annotation and value.
func (pl *GPUPlacement) PreFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	d, err := parseDemand(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if d.isZero() {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if pl.observed.firstTime(pod.UID) {
		if c, ok := gpu.ClassOf(d.requestOn(""), d.cpuMilli, d.memoryMiB); ok {
			c.Products = d.products
			pl.demand.Observe(c)
		}
	}
	s := &cycleState{demand: d, picks: map[string]*pick{}}
	if pl.args.ScoringStrategy == FragmentationAware {
		s.classes = pl.classes(ctx, pl.demand.Snapshot())
	}
	cs.Write(stateKey, s)
	return nil, nil
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
	reach, free := pl.room.classRoom(nodes, snap, pl.topologies.epoch.Load(), func(ni fwk.NodeInfo) *nodeState {
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
func (pl *GPUPlacement) nodeStateFor(logger klog.Logger, ni fwk.NodeInfo) *nodeState {
	node := ni.Node()
	topo, key := pl.topologies.forNode(logger, node)
	if s, ok := pl.states.get(node.Name, ni.GetGeneration(), key); ok {
		return s
	}
	pods := make([]*v1.Pod, 0, len(ni.GetPods()))
	for _, pi := range ni.GetPods() {
		pods = append(pods, pi.GetPod())
	}
	s := pl.buildState(logger, topo, pods)
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
	if ns.state == nil {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "node has no GPUs")
	}
	if ns.overbooked {
		return fwk.NewStatus(fwk.Unschedulable, "node's GPUs are over-committed by pods placed outside Tessera")
	}
	a, placement, err := ns.state.Allocate(s.demand.requestOn(ns.topo.singleProfile))
	if err != nil {
		reason := err.Error()
		if fe, ok := err.(gpu.FitError); ok {
			reason = fe.Reason()
		}
		return fwk.NewStatus(fwk.Unschedulable, reason)
	}
	p := &pick{assignment: a, placement: placement, state: ns, free: freeNonGPU(ni)}
	if pl.args.ScoringStrategy == FragmentationAware && s.demand.shareMilli > 0 && len(s.classes) > 0 {
		pl.bestShareGPU(s, p)
	}
	s.setPick(ni.Node().Name, p)
	return nil
}

// bestShareGPU chooses, for a share, the GPU of the node whose use raises
// the node's fragmentation the least — FGD's choice of device, not only of
// node. GPUs with the same free capacity are interchangeable for the
// fragmentation measure, so one of each is tried. The pick keeps Allocate's
// best-fit choice on ties.
func (pl *GPUPlacement) bestShareGPU(s *cycleState, p *pick) {
	after := s.after(p.free)
	best, err := gpu.FragmentationDelta(p.state.state, p.assignment, p.free, after, s.classes)
	if err != nil {
		return
	}
	var triedBuf [16]int64
	tried := triedBuf[:0]
	for _, g := range p.state.state.GPUs() {
		if g.GPU.MIG != gpu.MIGDisabled || (g.Use != gpu.UseFree && g.Use != gpu.UseShared) || g.FreeMilli < int64(s.demand.shareMilli) || slices.Contains(tried, g.FreeMilli) {
			continue
		}
		tried = append(tried, g.FreeMilli)
		a := gpu.Assignment{Shares: []gpu.Share{{GPU: g.GPU.Index, Milli: s.demand.shareMilli}}}
		d, err := gpu.FragmentationDelta(p.state.state, a, p.free, after, s.classes)
		if err == nil && d < best-1e-9 {
			best, p.assignment = d, a
		}
	}
	p.raw, p.scored = best, true
}

// after is the node's free CPU and memory once the pod runs there (its
// product does not change).
func (s *cycleState) after(free gpu.NonGPU) gpu.NonGPU {
	return gpu.NonGPU{CPUMilli: free.CPUMilli - s.demand.cpuMilli, MemoryMiB: free.MemoryMiB - s.demand.memoryMiB, Product: free.Product}
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
	snap := pl.demand.Snapshot()
	if snap.Observations() == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	d, err := parseDemand(pod)
	if err != nil || !d.isZero() {
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
		if !s.demand.isZero() {
			return 0, nil
		}
		// A pod without GPU demand: Filter did not run; the pick holds no
		// devices, only the node's state and free CPU/memory.
		p = &pick{state: pl.nodeStateFor(klog.FromContext(ctx), ni), free: freeNonGPU(ni)}
		s.setPick(ni.Node().Name, p)
		if p.state.state == nil {
			// No GPUs on the node: nothing to strand.
			return 0, nil
		}
	}
	switch pl.args.ScoringStrategy {
	case FragmentationAware:
		if p.scored {
			return 0, nil
		}
		delta, err := gpu.FragmentationDelta(p.state.state, p.assignment, p.free, s.after(p.free), s.classes)
		if err != nil {
			return 0, fwk.AsStatus(err)
		}
		p.raw = delta
	default:
		capacity := p.state.state.Capacity()
		if capacity > 0 {
			p.raw = float64(p.state.state.UsedMilli()+p.assignment.Milli()) / float64(capacity)
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
// affinity, topology spreading) still decide among equally good nodes. On
// the openb trace (seeds 42-44) it raised GPU allocation from 94.85% (ties
// broken at random) to 95.11%; a band of 0.4 gave 95.06%.
const packingTieBreak = 0.05

// freeAfter is the fraction of the node's GPU capacity that is free once the
// pod holds its devices there: 0 for a node without GPUs, where a pod
// without GPU demand strands nothing.
func (p *pick) freeAfter() float64 {
	if p.state == nil || p.state.state == nil {
		return 0
	}
	c := p.state.state.Capacity()
	if c <= 0 {
		return 0
	}
	return float64(c-p.state.state.UsedMilli()-p.assignment.Milli()) / float64(c)
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
// override: measured on the openb trace, that cost 3 points of GPU
// allocation.)
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
	multiGPU := s.demand.wholeGPUs > 1
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

// Reserve records the devices chosen for the pod on the node, so that no
// other pod in flight is given them.
func (pl *GPUPlacement) Reserve(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, err := getCycleState(cs)
	if err != nil {
		return nil
	}
	p := s.getPick(nodeName)
	if p == nil {
		// Filter did not run on this node in this cycle: decide now, from
		// the cycle's snapshot.
		ni, err := pl.handle.SnapshotSharedLister().NodeInfos().Get(nodeName)
		if err != nil {
			return fwk.AsStatus(err)
		}
		if st := pl.Filter(ctx, cs, pod, ni); !st.IsSuccess() {
			return st
		}
		p = s.getPick(nodeName)
	}
	pl.ledger.set(pod.UID, p.assignment)
	return nil
}

// Unreserve releases the pod's reserved devices.
func (pl *GPUPlacement) Unreserve(_ context.Context, cs fwk.CycleState, pod *v1.Pod, _ string) {
	pl.ledger.forget(pod.UID)
}

// Bind binds a pod that holds devices and writes the decision on it in the
// same API call: the Binding carries the annotation
// tessera.dev/gpu-assignment (for the node-side component that hands the
// devices to the container, and for rebuilding state after a restart), and
// the API server copies a Binding's annotations onto the pod as it sets the
// node. One write per pod instead of a patch and a binding, which halves
// the API server's load for GPU pods. Pods without devices are left to
// DefaultBinder (Skip), so the shipped profiles list GPUPlacement first at
// the bind extension point.
func (pl *GPUPlacement) Bind(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	a, ok := pl.ledger.get(pod.UID)
	if !ok {
		return fwk.NewStatus(fwk.Skip)
	}
	if s, err := getCycleState(cs); err == nil {
		if p := s.getPick(nodeName); p != nil && p.state.topo != nil {
			a = a.WithUUIDs(p.state.topo.topo)
		}
	}
	value, err := gpu.MarshalAssignment(a)
	if err != nil {
		return fwk.AsStatus(err)
	}
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			Annotations: map[string]string{AnnotationAssignment: value}},
		Target: v1.ObjectReference{Kind: "Node", Name: nodeName},
	}
	if c := pl.handle.APICacher(); c != nil {
		onFinish, err := c.BindPod(binding)
		if err != nil {
			return fwk.AsStatus(err)
		}
		if err := c.WaitOnFinish(ctx, onFinish); err != nil {
			return fwk.AsStatus(err)
		}
		return nil
	}
	if err := pl.handle.ClientSet().CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fwk.AsStatus(fmt.Errorf("binding with %s: %w", AnnotationAssignment, err))
	}
	return nil
}

// EventsToRegister wakes pods rejected by GPUPlacement only when GPUs may
// have become available: a GPU pod left a node, or a GPU node appeared or
// changed its GPUs.
func (pl *GPUPlacement) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterPodDeleted},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable | fwk.UpdateNodeLabel}, QueueingHintFn: pl.isSchedulableAfterNodeChange},
	}, nil
}

func (pl *GPUPlacement) isSchedulableAfterPodDeleted(_ klog.Logger, _ *v1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	deleted, ok := podOf(oldObj)
	if !ok {
		return fwk.Queue, nil
	}
	if _, has := deleted.Annotations[AnnotationAssignment]; has {
		return fwk.Queue, nil
	}
	if d, err := parseDemand(deleted); err == nil && !d.isZero() {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

func (pl *GPUPlacement) isSchedulableAfterNodeChange(_ klog.Logger, _ *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	_, node, err := util.As[*v1.Node](nil, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if _, ok := topologyFromLabels(node); ok {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

func podOf(obj any) (*v1.Pod, bool) {
	switch o := obj.(type) {
	case *v1.Pod:
		return o, true
	case cache.DeletedFinalStateUnknown:
		p, ok := o.Obj.(*v1.Pod)
		return p, ok
	}
	return nil, false
}

// observedSet remembers which pods' demand has been learned, so a pod that
// is retried is counted once. It forgets everything when full, which only
// lets a few retried pods count twice.
type observedSet struct {
	mu   sync.Mutex
	max  int
	seen map[types.UID]struct{}
}

func newObservedSet(max int) *observedSet {
	return &observedSet{max: max, seen: map[types.UID]struct{}{}}
}

func (o *observedSet) firstTime(uid types.UID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.seen[uid]; ok {
		return false
	}
	if len(o.seen) >= o.max {
		o.seen = map[types.UID]struct{}{}
	}
	o.seen[uid] = struct{}{}
	return true
}

// signerName is GPUPlacement's signature fragment for opportunistic
// batching (KEP-5598): pods with the same GPU demand get the same
// feasibility and scores on the same nodes.
const signerName = "tessera.dev/gpu-demand"

// SignPod lets the scheduler batch identical pods. Without it upstream turns
// batching off for every pod of the profile, GPU or not. The fragment is the
// pod's GPU demand (whole GPUs, MIG slices, share, locality); CPU and memory
// are signed by NodeResourcesFit. Pods with malformed GPU annotations are
// not batched.
func (pl *GPUPlacement) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	d, err := parseDemand(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable, err.Error())
	}
	return []fwk.SignFragment{{Key: signerName, Value: struct {
		Whole, Share int
		MIG          []gpu.MIGRequest
		Locality     gpu.Locality
	}{d.wholeGPUs, d.shareMilli, d.mig, d.locality}}}, nil
}
