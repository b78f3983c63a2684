package gang

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/preemption"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/profile"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// Preemption by a gang is decided for the whole group at once. A member
// that finds no room (its assembly found the group short of room, or it
// found no node during the assembly) runs Gang's PostFilter, which the
// shipped profiles list before ElasticQuota's. It plans victims for every
// member still without a place together: pkg/quota's SelectVictims with
// the group as one preemptor (its members' summed charge, its priority)
// and a fit check that runs the whole-group simulation (groupSim) on the
// cluster with the victims gone and asks the namespace's quota for all
// members at once. The victims are the shortest prefix of eligible pods
// (lowest priority first, gangs whole) that lets the whole group fit,
// thinned by reprieve; they are evicted together, and the group's members
// wait until that is done. If no victim set lets the whole group fit,
// nothing is evicted, and the group's assembly ends (Defer): it gives the
// slot back to other groups and waits for room instead of holding the slot
// until its timeout. Either way Gang's PostFilter ends the preemption
// phase for a member (ElasticQuota's per-pod preemption never runs for it),
// so a gang never evicts pods for only some of its members.

// gangCycle is what PreFilter learned about the member's group, for
// PostFilter.
type gangCycle struct {
	key gangcore.GroupKey
	// fit is the whole-group check's result when this member started the
	// assembly; fitNow for members of a group already assembling.
	fit fitResult
}

func (s *gangCycle) Clone() fwk.StateData { return s }

const cycleKey fwk.StateKey = Name + "/cycle"

// PostFilter plans and starts preemption for the member's whole group (see
// above). Pods outside groups are left to the next PostFilter plugin.
func (pl *Gang) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	key := groupKeyOf(pod)
	if key == "" {
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	// UnschedulableAndUnresolvable stops the framework's PostFilter loop:
	// no per-pod preemption for a member, whatever Gang decides.
	stop := func(msg string) (*fwk.PostFilterResult, *fwk.Status) {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg)
	}
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return stop("pod group members with preemptionPolicy Never do not preempt")
	}
	if n := pl.preemptingFor(key); n > 0 {
		return stop(fmt.Sprintf("pod group %s is evicting %d pods to make room for all its members", key, n))
	}
	d, err := state.Read(cycleKey)
	if err != nil {
		return stop(fmt.Sprintf("no preemption while pod group %s is not assembling", key))
	}
	if c := d.(*gangCycle); c.fit == fitNever {
		return stop(fmt.Sprintf("pod group %s cannot be placed whole even on empty nodes; preemption cannot help", key))
	}
	victims, msg := pl.planPreemption(key, pod)
	if len(victims) == 0 {
		// The member found no node and nothing may be evicted for the
		// group: its assembly cannot complete now. It ends (releasing its
		// reservations and the slot, so other groups go on) and the group
		// waits for room, rather than hold the slot until its timeout.
		pl.rejectWaiting(pl.mgr.Defer(key, pl.now(), msg), msg)
		pl.activateBlocked(klog.FromContext(ctx))
		return stop(msg)
	}
	pl.evict(ctx, key, pod, victims)
	return stop(msg)
}

// planPreemption chooses the victims that let every member of the group
// still without a place fit at once, or explains why there are none.
func (pl *Gang) planPreemption(key gangcore.GroupKey, pod *v1.Pod) ([]*v1.Pod, string) {
	g, pods, members, need := pl.pendingMembers(key)
	if need <= 0 {
		return nil, fmt.Sprintf("pod group %s has no members left to place", key)
	}
	if len(pods) < need {
		return nil, fmt.Sprintf("pod group %s needs %d more members but has %d pending pods; nothing to preempt for yet", key, need, len(pods))
	}
	nodes, err := pl.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return nil, err.Error()
	}
	tracker := profile.Tracker(pl.handle)
	if tracker == nil {
		// No quotas in this profile: plain priority preemption.
		tracker = quota.NewTracker()
	}
	// Pods being deleted are room being given back: the plan sees the
	// cluster without them, so that no pod is evicted twice for one room.
	// That includes the victims this plugin evicted whose deletion the
	// scheduler's snapshot does not show yet: planning again before the
	// informer caught up would evict them (or others) a second time.
	sim := pl.newGroupSim(g, need, pods, members, nodes, false, pl.leaving)
	// The same simulation requiring local GPUs: it shares the derived node
	// states (runs undo what they assume), so nothing is derived twice.
	local := *sim
	local.local = true
	return planLocalVictims(key, pl.groupPriority(key, pod), sim, &local, nodes, tracker)
}

// planLocalVictims is planVictims, preferring among equally cheap victim
// sets (quota.NoCostlier) one that lets every multi-GPU member get GPUs of
// one NVLink domain or NUMA node (local, the same simulation requiring it).
func planLocalVictims(key gangcore.GroupKey, priority int32, sim, local *groupSim, nodes []fwk.NodeInfo, tracker *quota.Tracker) ([]*v1.Pod, string) {
	victims, msg := planVictims(key, priority, sim, nodes, tracker)
	if len(victims) == 0 {
		return victims, msg
	}
	if lv, lmsg := planVictims(key, priority, local, nodes, tracker); len(lv) > 0 && quota.NoCostlier(usages(lv), usages(victims)) {
		return lv, lmsg
	}
	return victims, msg
}

// usages are the pods' quota records, for comparing victim sets.
func usages(pods []*v1.Pod) []quota.PodUsage {
	out := make([]quota.PodUsage, len(pods))
	for i, p := range pods {
		out[i] = kube.QuotaUsage(p, p.Spec.NodeName)
	}
	return out
}

// terminating reports a pod being deleted.
func terminating(p *v1.Pod) bool { return p.DeletionTimestamp != nil }

// evictedMemory is how long a victim's eviction is remembered: long enough
// for the scheduler's informer to see the deletion (milliseconds to
// seconds), short enough that the map stays small.
const evictedMemory = 2 * time.Minute

// leaving reports the pods that are on their way out: being deleted, or
// evicted by this plugin within evictedMemory.
func (pl *Gang) leaving(p *v1.Pod) bool {
	if terminating(p) {
		return true
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	at, ok := pl.evicted[p.UID]
	if ok && pl.now().Sub(at) > evictedMemory {
		delete(pl.evicted, p.UID)
		return false
	}
	return ok
}

// planVictims is planPreemption's decision: the victims among the pods on
// nodes (not the group's own, not leaving: sim.gone) that let sim's members all
// fit at once within their namespace's quota (tracker), preempting with
// priority, or a message saying why there are none.
func planVictims(key gangcore.GroupKey, priority int32, sim *groupSim, nodes []fwk.NodeInfo, tracker *quota.Tracker) ([]*v1.Pod, string) {
	need := sim.need
	namespace := sim.pods[0].Namespace
	total := quota.Resources{}
	for _, p := range sim.pods[:need] {
		total = total.Add(kube.QuotaCharge(p))
	}
	self := quota.PodUsage{UID: "podgroup/" + string(key), Namespace: namespace, Priority: priority, Resources: total}

	byUID := map[string]*v1.Pod{}
	var candidates []quota.PodUsage
	for _, ni := range nodes {
		for _, pi := range ni.GetPods() {
			p := pi.GetPod()
			if sim.gone != nil && sim.gone(p) || groupKeyOf(p) == key {
				continue
			}
			byUID[string(p.UID)] = p
			candidates = append(candidates, kube.QuotaUsage(p, ni.Node().Name))
		}
	}
	fits := func(victims []quota.PodUsage) bool {
		if !tracker.CheckAdmitWithout(namespace, total, victims).Admit {
			return false
		}
		gone := make(map[types.UID]bool, len(victims))
		nodes := map[string]bool{}
		for _, v := range victims {
			gone[types.UID(v.UID)] = true
			nodes[v.Node] = true
		}
		return sim.runWithout(gone, nodes)
	}
	chosen, ok := tracker.SelectVictims(self, candidates, fits)
	switch {
	case !ok:
		return nil, fmt.Sprintf("pod group %s cannot be placed whole even by preemption: no set of pods it may preempt (lower priority in its namespace, or borrowing quota it is guaranteed) makes room for its %d members; nothing was evicted", key, need)
	case len(chosen) == 0:
		return nil, fmt.Sprintf("pod group %s fits once the pods being deleted are gone; no victims needed", key)
	}
	out := make([]*v1.Pod, 0, len(chosen))
	for _, v := range chosen {
		out = append(out, byUID[v.UID])
	}
	return out, fmt.Sprintf("pod group %s preempts %d pods to make room for all %d members", key, len(out), need)
}

// groupPriority is the priority the group preempts with: its most
// important member's.
func (pl *Gang) groupPriority(key gangcore.GroupKey, pod *v1.Pod) int32 {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if p, ok := pl.priority[key]; ok {
		return p
	}
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority
	}
	return 0
}

// preemptingFor is the number of the group's victims still being evicted.
func (pl *Gang) preemptingFor(key gangcore.GroupKey) int64 {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if n := pl.preempting[key]; n != nil {
		return n.Load()
	}
	return 0
}

// evict evicts the victims in the background with upstream's preemption
// executor (the DisruptionTarget condition, the delete call and a Preempted
// Event per victim, naming the member that preempted), holding the group's
// members back meanwhile; then the group tries again.
func (pl *Gang) evict(ctx context.Context, key gangcore.GroupKey, pod *v1.Pod, victims []*v1.Pod) {
	left := &atomic.Int64{}
	left.Store(int64(len(victims)))
	pl.mu.Lock()
	pl.preempting[key] = left
	pl.mu.Unlock()
	// The members' own assembly ends: they wait for the victims without
	// holding the slot or any reservation.
	pl.rejectWaiting(pl.mgr.Defer(key, pl.now(), fmt.Sprintf("pod group %s is preempting %d pods", key, len(victims))), "the pod group is preempting")

	by := &groupPreemptor{pod: pod, key: key}
	logger := klog.FromContext(ctx)
	go func() {
		pl.handle.Parallelizer().Until(pl.ctx, len(victims), func(i int) {
			v := victims[i]
			if _, err := pl.executor.PreemptPod(pl.ctx, nodeCandidate(v.Spec.NodeName), by, v, Name); err != nil {
				logger.Error(err, "Evicting a victim of a pod group's preemption", "podGroup", key, "victim", klog.KObj(v))
			} else {
				countPreempted(pod.Namespace, v.Namespace)
				pl.mu.Lock()
				pl.evicted[v.UID] = pl.now()
				pl.mu.Unlock()
			}
			left.Add(-1)
		}, Name)
		pl.mu.Lock()
		delete(pl.preempting, key)
		pl.mu.Unlock()
		logger.V(2).Info("Pod group preempted", "podGroup", key, "victims", len(victims))
		pl.activateGroup(logger, key)
	}()
}

// nodeCandidate names the node of one victim for the executor's Event.
type nodeCandidate string

func (c nodeCandidate) Victims() *extenderv1.Victims { return &extenderv1.Victims{} }
func (c nodeCandidate) Name() string                 { return string(c) }
func (c nodeCandidate) NumPodGroupDisruptions() int  { return 0 }

// groupPreemptor presents a pod group to upstream's executor: Events and
// the victims' DisruptionTarget condition name the group and relate to the
// member whose cycle decided.
type groupPreemptor struct {
	pod *v1.Pod
	key gangcore.GroupKey
}

func (g *groupPreemptor) GetName() string       { return string(g.key) }
func (g *groupPreemptor) GetNamespace() string  { return g.pod.Namespace }
func (g *groupPreemptor) UID() types.UID        { return types.UID(g.key) }
func (g *groupPreemptor) SchedulerName() string { return g.pod.Spec.SchedulerName }
func (g *groupPreemptor) Obj() runtime.Object   { return g.pod }
func (g *groupPreemptor) Pods() map[string]*v1.Pod {
	return map[string]*v1.Pod{g.pod.Name: g.pod}
}
func (g *groupPreemptor) Priority() int32 {
	if g.pod.Spec.Priority != nil {
		return *g.pod.Spec.Priority
	}
	return 0
}
func (g *groupPreemptor) Type() string { return "pod group" }

var _ preemption.ExecutorPreemptor = &groupPreemptor{}
var _ preemption.Candidate = nodeCandidate("")
