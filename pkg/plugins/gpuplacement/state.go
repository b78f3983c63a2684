package gpuplacement

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// ledger holds the device assignments of pods that are reserved but whose
// PreBind has not yet written them on the pod (or whose update the
// scheduler's cache has not yet seen). Together with the assignment
// annotations of bound pods it is the whole device-level truth: two pods in
// flight never get the same device, and after a restart the annotations
// alone rebuild it.
type ledger struct {
	mu      sync.RWMutex
	entries map[types.UID]gpu.Assignment
}

func newLedger() *ledger { return &ledger{entries: map[types.UID]gpu.Assignment{}} }

func (l *ledger) get(uid types.UID) (gpu.Assignment, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	a, ok := l.entries[uid]
	return a, ok
}

func (l *ledger) set(uid types.UID, a gpu.Assignment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[uid] = a
}

func (l *ledger) forget(uid types.UID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, uid)
}

func (l *ledger) len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.entries)
}

// nodeState is a node's GPU state as derived from its topology and pods.
type nodeState struct {
	topo *nodeTopology
	// state is nil for a node without GPUs.
	state *gpu.NodeState
	// overbooked is set when the pods on the node hold more than its devices
	// (pods bound by another scheduler, or a topology that shrank): nothing
	// more is placed there until it clears.
	overbooked bool

	// reach caches, for the demand classes of one Distribution version in
	// their storage order, the free capacity each class could use here
	// (gpu.NodeState.Reach). A nodeState lives as long as its NodeInfo
	// generation, so the node's free CPU and memory cannot change under it.
	reachMu      sync.Mutex
	reachVersion uint64
	reach        []int64
}

// reachOf returns the free capacity of the node each class of snap could
// use, in the order of snap.Stored(), computing it only when the classes
// changed since the last call. The caller must not modify the result.
func (ns *nodeState) reachOf(snap gpu.DistributionSnapshot, free gpu.NonGPU) []int64 {
	ns.reachMu.Lock()
	defer ns.reachMu.Unlock()
	stored := snap.Stored()
	if ns.reach == nil || ns.reachVersion != snap.Version() || len(ns.reach) != len(stored) {
		ns.reach = ns.state.Reach(free, stored, ns.reach)
		ns.reachVersion = snap.Version()
	}
	return ns.reach
}

// buildState derives a node's GPU state from its topology and the pods on
// it: the assignment of a reserved pod from the ledger, of a bound pod from
// its annotation, and for a pod placed by another scheduler (no annotation)
// a conservative assignment of what it requests, chosen after all known
// assignments so that it takes what is left.
func (pl *GPUPlacement) buildState(logger klog.Logger, topo *nodeTopology, pods []*v1.Pod) *nodeState {
	ns := &nodeState{topo: topo}
	if topo == nil {
		return ns
	}
	ns.state = gpu.NewNodeState(topo.topo)
	var unknown []gpu.Request
	for _, pod := range pods {
		if a, ok := pl.ledger.get(pod.UID); ok {
			if err := ns.state.Add(a); err != nil {
				logger.Error(err, "Reserved GPU assignment conflicts with the node's state", "pod", klog.KObj(pod))
				ns.overbooked = true
			}
			continue
		}
		if raw, ok := pod.Annotations[AnnotationAssignment]; ok {
			a, err := gpu.UnmarshalAssignment(raw)
			if err == nil {
				err = ns.state.Add(a)
			}
			if err == nil {
				continue
			}
			logger.V(2).Info("Ignoring unusable GPU assignment annotation; accounting the pod conservatively", "pod", klog.KObj(pod), "err", err)
		}
		d, err := parseDemand(pod)
		if err != nil || d.isZero() {
			continue
		}
		unknown = append(unknown, d.requestOn(topo.singleProfile))
	}
	for _, r := range unknown {
		if _, err := ns.state.AddUnknown(r); err != nil {
			ns.overbooked = true
		}
	}
	return ns
}

// stateCache keeps each node's derived state for as long as the node and
// its pods are unchanged (the scheduler's NodeInfo generation) and its
// published topology is the same, so Filter and Score do not rebuild it
// for every pod.
type stateCache struct {
	mu      sync.Mutex
	entries map[string]cachedState
}

type cachedState struct {
	generation int64
	topoKey    string
	state      *nodeState
}

func (c *stateCache) get(node string, generation int64, topoKey string) (*nodeState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[node]
	if !ok || e.generation != generation || e.topoKey != topoKey {
		return nil, false
	}
	return e.state, true
}

func (c *stateCache) put(node string, generation int64, topoKey string, s *nodeState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[node] = cachedState{generation: generation, topoKey: topoKey, state: s}
}

func (c *stateCache) forget(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, node)
}
