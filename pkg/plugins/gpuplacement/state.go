package gpuplacement

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
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
	state      *kube.NodeGPUs
}

func (c *stateCache) get(node string, generation int64, topoKey string) (*kube.NodeGPUs, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[node]
	if !ok || e.generation != generation || e.topoKey != topoKey {
		return nil, false
	}
	return e.state, true
}

func (c *stateCache) put(node string, generation int64, topoKey string, s *kube.NodeGPUs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[node] = cachedState{generation: generation, topoKey: topoKey, state: s}
}

func (c *stateCache) forget(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, node)
}

// room keeps, summed over the cluster's nodes, the free GPU capacity and the
// part of it each demand class could use (gpu.NodeState.Reach), in the
// storage order of one Distribution version. A cycle re-derives only the
// nodes whose NodeInfo generation changed since the last cycle (usually the
// one node the last pod went to), so weighting every class by its scarcity
// costs a comparison per node per cycle, not nodes x classes work. Like the
// rest of the plugin's state it is derived: a restarted scheduler rebuilds
// it in its first cycle.
type room struct {
	mu      sync.Mutex
	version uint64 // Distribution version of reach's order
	epoch   uint64 // topologies.epoch the sums were made at
	stamp   uint64 // cycle counter, to find nodes that left
	nodes   map[string]*roomEntry
	reach   []int64
	free    int64
}

type roomEntry struct {
	generation int64
	stamp      uint64
	free       int64
	reach      []int64
}

// classRoom returns the cluster's free GPU capacity and, for each class of
// snap.Classes(), the part of it the class could use, bringing the sums up
// to date with nodes first.
func (r *room) classRoom(nodes []fwk.NodeInfo, snap gpu.DistributionSnapshot, epoch uint64, stateOf func(fwk.NodeInfo) *kube.NodeGPUs) ([]int64, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stored := snap.Stored()
	if r.nodes == nil || r.version != snap.Version() || r.epoch != epoch || len(r.reach) != len(stored) {
		r.nodes = map[string]*roomEntry{}
		r.reach = make([]int64, len(stored))
		r.free = 0
		r.version, r.epoch = snap.Version(), epoch
	}
	r.stamp++
	for _, ni := range nodes {
		name := ni.Node().Name
		e := r.nodes[name]
		if e != nil && e.generation == ni.GetGeneration() {
			e.stamp = r.stamp
			continue
		}
		if e == nil {
			e = &roomEntry{}
			r.nodes[name] = e
		} else {
			r.add(e, -1)
		}
		e.generation, e.stamp = ni.GetGeneration(), r.stamp
		e.free, e.reach = 0, e.reach[:0]
		if ns := stateOf(ni); ns.GPUs != nil {
			e.free = ns.GPUs.FreeMilli()
			e.reach = ns.GPUs.Reach(freeNonGPU(ni), stored, e.reach)
		}
		r.add(e, 1)
	}
	if len(r.nodes) > len(nodes) {
		for name, e := range r.nodes {
			if e.stamp != r.stamp {
				r.add(e, -1)
				delete(r.nodes, name)
			}
		}
	}
	reach := make([]int64, len(snap.Classes()))
	for i := range reach {
		reach[i] = r.reach[snap.Slot(i)]
	}
	return reach, r.free
}

// add adds (sign 1) or removes (sign -1) a node's entry from the sums.
func (r *room) add(e *roomEntry, sign int64) {
	r.free += sign * e.free
	for i, v := range e.reach {
		r.reach[i] += sign * v
	}
}
