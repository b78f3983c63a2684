package elasticquota

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	policy "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/preemption"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/profile"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// Preemption in Tessera is quota-aware and gang-whole, so ElasticQuota is
// the profile's only PostFilter (the shipped profiles disable upstream's
// DefaultPreemption, which knows neither quotas nor gangs and could evict a
// namespace within its min or one member of a gang). The rules are
// pkg/quota's SelectVictims:
//
//   - within a namespace, and among namespaces without a quota, ordinary
//     priority preemption: only strictly lower-priority pods are victims;
//   - reclaim: a namespace that needs what it is guaranteed (within its
//     min) preempts pods of namespaces that borrow it, whatever their
//     priority, never taking a lender below its own min;
//   - the bound members of a gang are evicted all together or not at all,
//     wherever they run.
//
// Upstream's preemption Evaluator and Executor do the rest (choosing among
// candidate nodes, PodDisruptionBudgets as a tie-break, nominating the
// node, the DisruptionTarget condition, the Preempted Events and the
// asynchronous API calls), so behaviour users know from kube-scheduler is
// kept wherever quotas and gangs do not require otherwise.

// minCandidateNodesPercentage and minCandidateNodesAbsolute bound the dry
// run like DefaultPreemption's defaults: enough candidates to choose well,
// without a dry run on every node of a large cluster.
const (
	minCandidateNodesPercentage = 10
	minCandidateNodesAbsolute   = 100
)

// preemptor implements upstream's preemption.Interface with the quota and
// gang rules. It is separate from the plugin type so that the plugin's
// method set stays that of a plugin.
type preemptor struct {
	pl *ElasticQuota
	// gangs indexes the bound pods of every gang, so that a victim's whole
	// gang is evicted. It is rebuilt from the snapshot on each PostFilter;
	// PostFilter calls are serial, dry runs of one call are concurrent and
	// only read it.
	gangs map[gangKey][]fwk.PodInfo
}

type gangKey struct{ namespace, name string }

var _ preemption.Interface = &preemptor{}

// PostFilter preempts for a pod that no node can take: by reclaiming
// borrowed quota, by priority within its namespace, or both.
func (pl *ElasticQuota) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, m fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	preemptionAttempts.Inc()
	if msg := pl.preemptionHopeless(state, pod); msg != "" {
		return nil, fwk.NewStatus(fwk.Unschedulable, "preemption: "+msg)
	}
	pl.preemptor.gangs = pl.indexGangs()
	result, status := pl.evaluator.Preempt(ctx, state, pod, m)
	if msg := status.Message(); msg != "" {
		return result, fwk.NewStatus(status.Code(), "preemption: "+msg)
	}
	return result, status
}

// preemptionHopeless says why no victim set can help pod, "" when some may:
// a quota rejection that reclaim cannot fix (above max, or short of
// borrowable capacity) only yields to lower-priority pods of the same
// namespace. It keeps a dry run over every node off the hot path of pods
// that simply wait for quota.
func (pl *ElasticQuota) preemptionHopeless(state fwk.CycleState, pod *v1.Pod) string {
	d, err := state.Read(stateKey)
	if err != nil {
		return ""
	}
	s := d.(*preFilterState)
	if s.decision.Admit || s.decision.Reclaimable {
		return ""
	}
	if pl.tracker.HasPodBelow(pod.Namespace, s.usage.Priority) {
		return ""
	}
	return s.decision.Reason + " (no pod of the namespace has a lower priority, and reclaiming borrowed quota cannot help)"
}

// indexGangs lists the pods of every gang from the scheduler's snapshot.
func (pl *ElasticQuota) indexGangs() map[gangKey][]fwk.PodInfo {
	nodes, err := pl.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return nil
	}
	out := make(map[gangKey][]fwk.PodInfo)
	for _, ni := range nodes {
		for _, pi := range ni.GetPods() {
			p := pi.GetPod()
			if g := p.Labels[schedv1alpha1.PodGroupLabel]; g != "" {
				k := gangKey{p.Namespace, g}
				out[k] = append(out[k], pi)
			}
		}
	}
	return out
}

// GetOffsetAndNumCandidates picks a random starting node and how many
// candidate nodes to dry-run, like DefaultPreemption.
func (p *preemptor) GetOffsetAndNumCandidates(numNodes int32) (int32, int32) {
	n := numNodes * minCandidateNodesPercentage / 100
	n = max(n, minCandidateNodesAbsolute)
	n = min(n, numNodes)
	if numNodes <= 0 {
		return 0, 0
	}
	return rand.Int32N(numNodes), n
}

// CandidatesToVictimsMap maps candidate nodes to their victims.
func (p *preemptor) CandidatesToVictimsMap(candidates []preemption.Candidate) map[string]*extenderv1.Victims {
	m := make(map[string]*extenderv1.Victims, len(candidates))
	for _, c := range candidates {
		m[c.Name()] = c.Victims()
	}
	return m
}

// PodEligibleToPreemptOthers refuses pods with preemptionPolicy Never, and
// pods whose earlier victims on their nominated node are still terminating
// (preempting again would evict more than needed).
func (p *preemptor) PodEligibleToPreemptOthers(_ context.Context, pod *v1.Pod, nominatedNodeStatus *fwk.Status) (bool, string) {
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return false, "not eligible due to preemptionPolicy=Never."
	}
	nom := pod.Status.NominatedNodeName
	if nom == "" || nominatedNodeStatus.Code() == fwk.UnschedulableAndUnresolvable {
		return true, ""
	}
	if ni, _ := p.pl.handle.MutableSnapshotSharedLister().NodeInfos().Get(nom); ni != nil {
		for _, pi := range ni.GetPods() {
			if preemption.PodTerminatingByPreemption(pi.GetPod()) {
				return false, "not eligible due to a terminating pod on the nominated node."
			}
		}
	}
	return true, ""
}

// OrderedScoreFuncs returns nil: upstream's default order (fewest PDB
// violations, lowest highest-victim priority, fewest victims, ...) chooses
// among candidate nodes.
func (p *preemptor) OrderedScoreFuncs(context.Context, map[string]*extenderv1.Victims) []func(string) int64 {
	return nil
}

// SelectVictimsOnNode finds the victims that let preemptor run on
// nodeInfo's node: pods on the node and the other members of their gangs,
// chosen by quota.Tracker.SelectVictims with a fit check that asks both the
// quota (with the victims gone) and every Filter plugin on the node (with
// the node's victims removed), so that the right devices are freed.
func (p *preemptor) SelectVictimsOnNode(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo,
	_ []*preemption.DomainVictim, pdbs []*policy.PodDisruptionBudget) ([]*v1.Pod, int, *fwk.Status) {
	logger := klog.FromContext(ctx)
	node := nodeInfo.Node().Name
	self := kube.QuotaUsage(pod, "")

	infos := make(map[string]fwk.PodInfo)
	var candidates []quota.PodUsage
	add := func(pi fwk.PodInfo) {
		vp := pi.GetPod()
		uid := string(vp.UID)
		if _, dup := infos[uid]; dup || vp.UID == pod.UID || p.pl.leaving(vp) {
			return
		}
		infos[uid] = pi
		candidates = append(candidates, kube.QuotaUsage(vp, vp.Spec.NodeName))
	}
	for _, pi := range nodeInfo.GetPods() {
		add(pi)
		vp := pi.GetPod()
		if g := vp.Labels[schedv1alpha1.PodGroupLabel]; g != "" {
			for _, member := range p.gangs[gangKey{vp.Namespace, g}] {
				add(member)
			}
		}
	}
	if len(candidates) == 0 {
		return nil, 0, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "no preemption victims found for incoming pod")
	}

	// Pods already being deleted, or evicted by this plugin with their
	// deletion not yet seen, are room that is being given back: the fit
	// check sees the node without them, so two preemptors never evict twice
	// for the same room. The quota of the deleted ones is already released
	// (see podChanged); that of the others is released below (gone).
	base, baseState := nodeInfo.Snapshot(), state.Clone()
	// gone are the evicted pods whose deletion the tracker has not seen
	// either: the quota check counts them as released too.
	var gone []quota.PodUsage
	for _, pi := range nodeInfo.GetPods() {
		if !p.pl.leaving(pi.GetPod()) {
			continue
		}
		if pi.GetPod().DeletionTimestamp == nil {
			gone = append(gone, kube.QuotaUsage(pi.GetPod(), pi.GetPod().Spec.NodeName))
		}
		if err := base.RemovePod(logger, pi.GetPod()); err != nil {
			return nil, 0, fwk.AsStatus(err)
		}
		if s := p.pl.handle.RunPreFilterExtensionRemovePod(ctx, baseState, pod, pi, base); !s.IsSuccess() {
			return nil, 0, s
		}
	}
	// fitsWith checks victims as the cycle would; local asks GPUPlacement
	// for GPUs of one NVLink domain or NUMA node.
	fitsWith := func(local bool) func([]quota.PodUsage) bool {
		return func(victims []quota.PodUsage) bool {
			return p.fitsWithout(ctx, pod, self, base, baseState, infos, node, victims, gone, local)
		}
	}
	chosen, ok := p.pl.tracker.SelectVictims(self, candidates, fitsWith(false))
	// Victims that free devices the pod can use well: among victim sets as
	// cheap by the quota rules (no more pods, none of a higher priority),
	// prefer one that gives a multi-GPU pod GPUs of one NVLink domain or
	// NUMA node.
	if ok && len(chosen) > 0 {
		if local, okLocal := p.pl.tracker.SelectVictims(self, candidates, fitsWith(true)); okLocal && len(local) > 0 && quota.NoCostlier(local, chosen) {
			chosen = local
		}
	}
	if !ok {
		if !p.pl.tracker.Governs(pod.Namespace) {
			return nil, 0, fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("no set of lower-priority pods of namespaces without an ElasticQuota makes room on node %q (namespace %q has no ElasticQuota, so its pods preempt only those)", node, pod.Namespace))
		}
		return nil, 0, fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("no set of eligible victims makes room on node %q within the quota rules", node))
	}
	if len(chosen) == 0 {
		// Room appeared since the Filter pass, or is being given back by
		// pods still terminating: the next attempt binds, no eviction.
		return nil, 0, fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("the pod fits on node %q once its terminating pods are gone; no more victims are needed", node))
	}
	pods := make([]*v1.Pod, 0, len(chosen))
	victims := make([]preemption.Victim, 0, len(chosen))
	for _, v := range chosen {
		pi := infos[v.UID]
		pods = append(pods, pi.GetPod())
		victims = append(victims, preemption.NewPodVictim(pi, nil, nil))
	}
	violating, _ := preemption.FilterVictimsWithPDBViolation(victims, pdbs)
	return pods, len(violating), nil
}

// fitsWithout reports whether pod fits its namespace's quota and, by every
// Filter plugin, node's base (with its cycle state) once victims are gone;
// local asks GPUPlacement for GPUs of one NVLink domain or NUMA node.
func (p *preemptor) fitsWithout(ctx context.Context, pod *v1.Pod, self quota.PodUsage, base fwk.NodeInfo, baseState fwk.CycleState,
	infos map[string]fwk.PodInfo, node string, victims, gone []quota.PodUsage, local bool) bool {
	logger := klog.FromContext(ctx)
	if !p.pl.tracker.CheckAdmitWithout(pod.Namespace, self.Resources, append(slices.Clone(victims), gone...)).Admit {
		return false
	}
	ni := base.Snapshot()
	st := baseState.Clone()
	for _, v := range victims {
		pi := infos[v.UID]
		if pi.GetPod().Spec.NodeName != node {
			continue
		}
		if err := ni.RemovePod(logger, pi.GetPod()); err != nil {
			return false
		}
		if s := p.pl.handle.RunPreFilterExtensionRemovePod(ctx, st, pod, pi, ni); !s.IsSuccess() {
			return false
		}
	}
	if local {
		st.Write(profile.RequireLocalityKey, profile.RequireLocality{})
	}
	return p.pl.handle.RunFilterPluginsWithNominatedPods(ctx, st, pod, ni).IsSuccess()
}

// countPreemption wraps the executor's eviction to count victims by kind:
// reclaim (another namespace's borrowed quota) or priority.
func (pl *ElasticQuota) countPreemption(next func(context.Context, preemption.Candidate, preemption.ExecutorPreemptor, *v1.Pod, string) (bool, error)) func(context.Context, preemption.Candidate, preemption.ExecutorPreemptor, *v1.Pod, string) (bool, error) {
	return func(ctx context.Context, c preemption.Candidate, by preemption.ExecutorPreemptor, victim *v1.Pod, plugin string) (bool, error) {
		inMemory, err := next(ctx, c, by, victim, plugin)
		if err == nil {
			countPreempted(by.GetNamespace(), victim.Namespace)
			pl.evictedMu.Lock()
			if pl.evicted == nil {
				pl.evicted = map[types.UID]time.Time{}
			}
			pl.evicted[victim.UID] = time.Now()
			pl.evictedMu.Unlock()
		}
		return inMemory, err
	}
}

// evictedMemory is how long a victim's eviction is remembered: far longer
// than the informer takes to show its deletion, short enough that the
// memory stays small.
const evictedMemory = 2 * time.Minute

// leaving reports whether a pod is on its way out: being deleted, or
// evicted by this plugin within evictedMemory (its deletion not yet seen).
func (pl *ElasticQuota) leaving(p *v1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return true
	}
	pl.evictedMu.Lock()
	defer pl.evictedMu.Unlock()
	at, ok := pl.evicted[p.UID]
	if ok && time.Since(at) > evictedMemory {
		delete(pl.evicted, p.UID)
		return false
	}
	return ok
}

// PreEnqueue keeps a pod out of the active queue while its victims are
// being evicted asynchronously (as DefaultPreemption does), so it does not
// preempt a second time for the same room.
//
// The victims' deletions can all be observed before the executor marks the
// preemption finished, leaving no later event to re-run this check; so a
// gated pod is re-activated shortly after, and checked again.
func (pl *ElasticQuota) PreEnqueue(ctx context.Context, pod *v1.Pod) *fwk.Status {
	if pl.executor != nil && pl.executor.IsPodRunningPreemption(pod.UID) {
		p := pod
		time.AfterFunc(preemptionRecheck, func() {
			if ctx.Err() == nil {
				pl.handle.Activate(klog.FromContext(ctx), map[string]*v1.Pod{p.Namespace + "/" + p.Name: p})
			}
		})
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "waiting for the preemption for this pod to be finished")
	}
	return nil
}

// preemptionRecheck is how soon a pod gated by its own running preemption
// is checked again.
const preemptionRecheck = 500 * time.Millisecond
