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
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/profile"
)

// Name is the plugin's name in the registry and in scheduler configurations.
const Name = "GPUPlacement"

const stateKey fwk.StateKey = Name

// GPUPlacement places GPU pods at device level.
type GPUPlacement struct {
	handle     fwk.Handle
	args       *Args
	topologies *topologies
	ledger     *ledger
	states     *stateCache
	// mix is the learned distribution of GPU demand classes.
	mix      *gpu.Distribution
	observed *observedSet
	metrics  *nodeMetrics
	room     room
}

var (
	_ profile.GPUStates     = &GPUPlacement{}
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
		mix:        gpu.NewDistribution(int(*args.DemandHalfLife)),
		observed:   newObservedSet(100000),
		metrics:    newNodeMetrics(),
	}
	if f := h.SharedInformerFactory(); f != nil {
		// Reservations end with the pod; the annotation carries the
		// assignment from then on.
		_, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			DeleteFunc: func(obj any) {
				if pod, ok := kube.PodOf(obj); ok {
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
	profile.SetGPUStates(ctx, h, pl)
	return pl, nil
}

// NodeGPUs is node's GPU state with only pods on it, derived as Filter
// derives it (the topology Filter uses for the node, the plugin's
// reservations): what Gang's whole-group check sees, through
// profile.GPUStates.
func (pl *GPUPlacement) NodeGPUs(logger klog.Logger, node *v1.Node, pods []*v1.Pod) *kube.NodeGPUs {
	topo, _ := pl.topologies.forNode(logger, node)
	return kube.BuildNodeGPUs(logger, topo, pods, pl.ledger.get)
}

// Name returns the plugin name.
func (pl *GPUPlacement) Name() string { return Name }

// cycleState is what GPUPlacement keeps for one pod's scheduling cycle.
type cycleState struct {
	demand  *kube.Demand
	classes []gpu.WeightedClass

	mu sync.Mutex
	// picks holds, per feasible node, the devices Filter chose and the
	// node's state, for Score and Reserve.
	picks map[string]*pick
}

type pick struct {
	assignment gpu.Assignment
	placement  gpu.Placement
	node       *kube.NodeGPUs
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

// EventsToRegister wakes pods rejected by GPUPlacement only when GPUs may
// have become available: a GPU pod left a node, or a GPU node appeared or
// changed its GPUs.
//
// A NodeGPUTopology that appears or changes (the agent publishes a node
// after its first pods queued, a GPU comes back) wakes them too. The
// scheduler watches every custom resource named here and schedules nothing
// until that watch has synced, so the event is named only when the CRD is
// served at start-up; installed later, topology changes reach waiting pods
// at the next node change or the queue's periodic flush.
func (pl *GPUPlacement) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	events := []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterPodDeleted},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable | fwk.UpdateNodeLabel}, QueueingHintFn: pl.isSchedulableAfterNodeChange},
	}
	if pl.topologies.informer.Load() != nil {
		gvr := tesserav1alpha1.NodeGPUTopologyResource
		events = append(events, fwk.ClusterEventWithHint{Event: fwk.ClusterEvent{Resource: fwk.EventResource(gvr.Resource + "." + gvr.Version + "." + gvr.Group), ActionType: fwk.Add | fwk.Update | fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterTopologyChange})
	}
	return events, nil
}

func (pl *GPUPlacement) isSchedulableAfterPodDeleted(_ klog.Logger, _ *v1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	deleted, ok := kube.PodOf(oldObj)
	if !ok {
		return fwk.Queue, nil
	}
	if _, has := deleted.Annotations[kube.AnnotationAssignment]; has {
		return fwk.Queue, nil
	}
	if d, err := kube.ParseDemand(deleted); err == nil && !d.IsZero() {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

// isSchedulableAfterTopologyChange retries the pod once GPUPlacement's own
// view of the NodeGPUTopology has the change (see topologies.caughtUp), so
// that the retry is not judged on the topology it replaces.
func (pl *GPUPlacement) isSchedulableAfterTopologyChange(logger klog.Logger, _ *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	obj, deleted := newObj, false
	if obj == nil {
		obj, deleted = oldObj, true
	}
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if !pl.topologies.caughtUp(u.GetName(), u.GetResourceVersion(), deleted, time.Second) {
			logger.V(4).Info("NodeGPUTopology change not in GPUPlacement's view after 1s; retrying anyway", "node", u.GetName())
		}
	}
	return fwk.Queue, nil
}

func (pl *GPUPlacement) isSchedulableAfterNodeChange(_ klog.Logger, _ *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	_, node, err := util.As[*v1.Node](nil, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if _, ok := kube.TopologyFromLabels(node); ok {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
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
	d, err := kube.ParseDemand(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable, err.Error())
	}
	return []fwk.SignFragment{{Key: signerName, Value: struct {
		Whole, Share int
		MIG          []gpu.MIGRequest
		Locality     gpu.Locality
	}{d.WholeGPUs, d.ShareMilli, d.MIG, d.Locality}}}, nil
}
