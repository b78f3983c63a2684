package gang

import (
	"fmt"
	"math"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/profile"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// simNode is a node in the whole-group simulation: its free CPU and memory
// and its GPU state, as GPUPlacement's Filter sees it (profile.NodeGPUs).
type simNode struct {
	node     *v1.Node
	cpu, mem int64
	// gpus is nil for a node without GPUs, or whose GPUs are over-committed
	// by pods placed outside Tessera (Filter places nothing there).
	gpus *gpu.NodeState
	// single is the MIG profile the node serves whole GPUs as ("" for
	// none), as in the topology GPUPlacement uses for it.
	single string
}

// wholeGroupFits checks, before any member reserves anything, that the
// group's still-unplaced members fit the cluster at the same time: CPU,
// memory and device-level GPU fit (exact GPUs, MIG slots, shares), within
// one topology domain when the group requires it. A hopeless group so costs
// one check rather than minMember scheduling cycles with devices held.
// The namespace's quota is checked for the whole group too (see
// groupQuota), and required node affinity and taints per node (see
// groupSim). Other constraints are left to the members' own scheduling
// cycles; a group they reject fails its assembly and backs off.
//
// The result is fitNow, fitLater (the group would fit the same nodes empty:
// it waits for running work to finish, without a growing back-off) or
// fitNever.
func (pl *Gang) wholeGroupFits(key gangcore.GroupKey, nodes []fwk.NodeInfo) (string, fitResult) {
	g, pods, members, need := pl.pendingMembers(key)
	if need <= 0 || pl.pods == nil {
		return "", fitNow
	}
	if reason, res := pl.groupQuota(key, pods, need); res != fitNow {
		return reason, res
	}
	reason, placed, ok := pl.newGroupSim(g, need, pods, members, nodes, false, nil).run()
	if ok {
		return "", fitNow
	}
	where := "the cluster"
	if g.Topology.Key != "" && g.Topology.Required {
		where = "any single " + g.Topology.Key + " domain"
	}
	if reason == "" {
		reason = fmt.Sprintf("%d more members need room at once, %d fit in %s (checked CPU, memory and device-level GPU fit)", need, placed, where)
	}
	if _, _, okEmpty := pl.newGroupSim(g, need, pods, members, nodes, true, nil).run(); okEmpty {
		return fmt.Sprintf("pod group %s waits for room: %s; it fits once running pods finish", key, reason), fitLater
	}
	return fmt.Sprintf("pod group %s cannot be placed whole: %s", key, reason), fitNever
}

// pendingMembers returns the group's spec and its members that have no
// place yet (with their sizes for gangcore.FitsAll), and how many more members
// it needs.
func (pl *Gang) pendingMembers(key gangcore.GroupKey) (gangcore.Group, []*v1.Pod, []gangcore.Member, int) {
	pending, need := pl.mgr.Pending(key)
	pl.mu.Lock()
	g := pl.groups[key]
	pl.mu.Unlock()
	if need <= 0 || pl.pods == nil {
		return g, nil, nil, need
	}
	var pods []*v1.Pod
	var members []gangcore.Member
	for _, ref := range pending {
		ns, name, _ := strings.Cut(ref.Name, "/")
		p, err := pl.pods.Pods(ns).Get(name)
		if err != nil {
			continue
		}
		size := int64(0)
		if d, err := kube.ParseDemand(p); err == nil {
			size = d.RequestOn("").GPUEquivalentMilli()
		}
		pods = append(pods, p)
		members = append(members, gangcore.Member{Size: size})
	}
	return g, pods, members, need
}

// fitResult is the outcome of the whole-group check.
type fitResult int

const (
	fitNow fitResult = iota
	fitLater
	fitNever
)

// groupSim is the whole-group simulation: the group's pending members
// placed greedily (gangcore.FitsAll) on the cluster's nodes with the real
// device-level GPU model, CPU and memory, required node affinity and
// NoSchedule/NoExecute taints. Other constraints (inter-pod affinity,
// spreading) are left to the members' own scheduling cycles.
type groupSim struct {
	g       gangcore.Group
	need    int
	pods    []*v1.Pod
	members []gangcore.Member
	// reqs holds each pod's CPU/memory request, GPU demand and required
	// node affinity, derived once: fit runs for every member on every node.
	reqs  []memberReq
	infos []fwk.NodeInfo
	nodes []*simNode
	// gone reports pods the simulation treats as already away (pods being
	// deleted, when planning a preemption); nil keeps every pod.
	gone func(*v1.Pod) bool
	// gpusOf derives a node's GPU state with only the given pods on it, as
	// GPUPlacement's Filter does (see profile.NodeGPUs).
	gpusOf func(*v1.Node, []*v1.Pod) *kube.NodeGPUs
	// local requires every multi-GPU member's GPUs in one NVLink domain or
	// NUMA node, for choosing victims that free local GPUs.
	local bool
	// ranks, when set, is each node's gangcore.NodeCap.Rank (see hold);
	// placement is the last run's gangcore.FitsAll placement.
	ranks     []int
	placement []int
}

// newGroupSim builds the simulation over nodes as they are (without the
// pods gone reports), or empty, with the node GPU states of pl's profile.
func (pl *Gang) newGroupSim(g gangcore.Group, need int, pods []*v1.Pod, members []gangcore.Member, infos []fwk.NodeInfo, empty bool, gone func(*v1.Pod) bool) *groupSim {
	logger := klog.FromContext(pl.ctx)
	gpusOf := func(n *v1.Node, pods []*v1.Pod) *kube.NodeGPUs { return profile.NodeGPUs(pl.handle, logger, n, pods) }
	return newGroupSim(g, need, pods, members, infos, empty, gone, gpusOf)
}

// newGroupSim builds the simulation with node GPU states from gpusOf.
func newGroupSim(g gangcore.Group, need int, pods []*v1.Pod, members []gangcore.Member, infos []fwk.NodeInfo, empty bool, gone func(*v1.Pod) bool, gpusOf func(*v1.Node, []*v1.Pod) *kube.NodeGPUs) *groupSim {
	s := &groupSim{g: g, need: need, pods: pods, members: members, gone: gone, gpusOf: gpusOf}
	for _, p := range pods {
		s.reqs = append(s.reqs, reqOf(p))
	}
	for _, ni := range infos {
		if ni.Node() == nil {
			continue
		}
		s.infos = append(s.infos, ni)
		s.nodes = append(s.nodes, s.buildNode(ni, empty, nil))
	}
	return s
}

// buildNode derives a node's free CPU, memory and GPU state, leaving out the
// pods in without (by UID) and those s.gone reports.
func (s *groupSim) buildNode(ni fwk.NodeInfo, empty bool, without map[types.UID]bool) *simNode {
	n := ni.Node()
	sn := &simNode{node: n, cpu: ni.GetAllocatable().GetMilliCPU(), mem: ni.GetAllocatable().GetMemory()}
	var onNode []*v1.Pod
	if !empty {
		// The NodeInfo's requested totals, less the pods left out.
		sn.cpu -= ni.GetRequested().GetMilliCPU()
		sn.mem -= ni.GetRequested().GetMemory()
		for _, pi := range ni.GetPods() {
			p := pi.GetPod()
			if without[p.UID] || s.gone != nil && s.gone(p) {
				c, m := podCPUMemory(p)
				sn.cpu += c
				sn.mem += m
				continue
			}
			onNode = append(onNode, p)
		}
	}
	if ng := s.gpusOf(n, onNode); ng.GPUs != nil && !ng.Overbooked {
		sn.gpus, sn.single = ng.GPUs, ng.Topology.SingleProfile
	}
	return sn
}

// run places the pending members and returns how many could be placed and
// whether that reaches need; reason is set when the group's minResources
// exceed what is free.
func (s *groupSim) run() (reason string, placed int, ok bool) {
	return s.runOn(s.nodes)
}

// runWithout is run with the pods in victims (by UID) gone from their nodes.
// Only the victims' nodes are rebuilt; FitsAll undoes its assumptions, so the
// simulation can be run again.
func (s *groupSim) runWithout(victims map[types.UID]bool, victimNodes map[string]bool) bool {
	nodes := s.nodes
	if len(victimNodes) > 0 {
		nodes = slices.Clone(s.nodes)
		for i, ni := range s.infos {
			if victimNodes[ni.Node().Name] {
				nodes[i] = s.buildNode(ni, false, victims)
			}
		}
	}
	_, _, ok := s.runOn(nodes)
	return ok
}

func (s *groupSim) runOn(sims []*simNode) (string, int, bool) {
	caps := make([]gangcore.NodeCap, len(sims))
	free := map[string]int64{}
	for i, sn := range sims {
		c := gangcore.NodeCap{}
		if sn.gpus != nil {
			c.Free = sn.gpus.FreeMilli()
			if sn.single != "" {
				// Members are sized in GPU-equivalents of whole GPUs, which
				// this node serves as (smaller) MIG devices: leave the
				// decision to fit rather than prune by size.
				c.Free = math.MaxInt64 / 4
			}
			free[gpu.ResourceGPU] += int64(sn.gpus.FreeWholeGPUs())
		}
		if s.g.Topology.Key != "" {
			c.Domain = sn.node.Labels[s.g.Topology.Key]
		}
		if s.ranks != nil {
			c.Rank = s.ranks[i]
		}
		free[string(v1.ResourceCPU)] += sn.cpu
		free[string(v1.ResourceMemory)] += sn.mem
		caps[i] = c
	}
	if ok, reason := gangcore.CheckMinResources(s.g, free); !ok {
		return reason, 0, false
	}
	fit := func(m, n int) bool { return s.fits(s.pods[m], &s.reqs[m], sims[n]) }
	assume := func(m, n int) func() { return s.assumeOn(&s.reqs[m], sims[n]) }
	placement, ok := gangcore.FitsAll(s.members, s.need, caps, s.g.Topology, fit, assume)
	s.placement = placement
	placed := 0
	for _, n := range placement {
		if n >= 0 {
			placed++
		}
	}
	return "", placed, ok
}

// fits reports whether pod p, with the requests req derived from it, fits
// the simulated node as it stands.
func (s *groupSim) fits(p *v1.Pod, req *memberReq, sn *simNode) bool {
	if req.invalid || req.cpu > sn.cpu || req.mem > sn.mem || !req.admits(sn.node, p) {
		return false
	}
	if req.gpus == nil {
		return true
	}
	if sn.gpus == nil {
		return false
	}
	_, _, err := sn.gpus.Allocate(s.request(req, sn))
	return err == nil
}

// assumeOn places a pod with the requests req on the simulated node (its
// CPU, memory and the GPUs the device model picks) and returns the undo.
func (s *groupSim) assumeOn(req *memberReq, sn *simNode) func() {
	c, mem := req.cpu, req.mem
	sn.cpu, sn.mem = sn.cpu-c, sn.mem-mem
	var a gpu.Assignment
	if req.gpus != nil && sn.gpus != nil {
		if got, _, err := sn.gpus.Allocate(s.request(req, sn)); err == nil && sn.gpus.Add(got) == nil {
			a = got
		}
	}
	return func() {
		sn.cpu, sn.mem = sn.cpu+c, sn.mem+mem
		if !a.IsZero() {
			sn.gpus.Remove(a)
		}
	}
}

// request is the member's device request on the simulated node.
func (s *groupSim) request(req *memberReq, sn *simNode) gpu.Request {
	r := req.gpus.RequestOn(sn.single)
	if s.local && r.GPUs > 1 {
		r.Locality = gpu.LocalityRequired
	}
	return r
}

// memberReq is what the simulation needs of a member pod, derived once.
type memberReq struct {
	cpu, mem int64
	// gpus is the pod's GPU demand, nil when it asks for none; invalid is
	// set when its GPU annotations are malformed (GPUPlacement refuses it
	// everywhere).
	gpus     *kube.Demand
	invalid  bool
	affinity nodeaffinity.RequiredNodeAffinity
}

// reqOf derives what the simulation needs of pod p.
func reqOf(p *v1.Pod) memberReq {
	c, m := podCPUMemory(p)
	r := memberReq{cpu: c, mem: m, affinity: nodeaffinity.GetRequiredNodeAffinity(p)}
	if d, err := kube.ParseDemand(p); err != nil {
		r.invalid = true
	} else if !d.IsZero() {
		r.gpus = d
	}
	return r
}

// admits reports whether the node passes the pod's required node affinity
// and node selector, and has no NoSchedule or NoExecute taint the pod does
// not tolerate: the cheap node constraints that decide where a member can
// go at all.
func (r *memberReq) admits(node *v1.Node, p *v1.Pod) bool {
	if ok, _ := r.affinity.Match(node); !ok {
		return false
	}
	_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, p.Spec.Tolerations, func(t *v1.Taint) bool {
		return t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute
	}, true)
	return !untolerated
}

// podCPUMemory is the pod's effective CPU (milli) and memory request, init
// containers and overhead included, as the scheduler counts it.
func podCPUMemory(p *v1.Pod) (int64, int64) {
	r := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
	return r.Cpu().MilliValue(), r.Memory().Value()
}

// minResources converts a PodGroup's minResources (CPU in milli, the rest
// in plain units).
func minResources(l v1.ResourceList) map[string]int64 { return kube.Amounts(l) }

// groupQuota checks the next need pending members of the group together
// against their namespace's ElasticQuota, so that quota never lets half a
// gang in: a group whose members alone exceed the quota's max can never
// run (fitNever); one that does not fit the quota now waits for it
// (fitLater) without reserving anything. A shortfall that reclaiming
// borrowed quota resolves passes: the members reclaim at PostFilter.
func (pl *Gang) groupQuota(key gangcore.GroupKey, pods []*v1.Pod, need int) (string, fitResult) {
	tracker := profile.Tracker(pl.handle)
	if tracker == nil || len(pods) == 0 {
		return "", fitNow
	}
	ns := pods[0].Namespace
	total := quota.Resources{}
	for _, p := range pods[:min(need, len(pods))] {
		total = total.Add(kube.QuotaCharge(p))
	}
	if reason := tracker.AboveMax(ns, total); reason != "" {
		return fmt.Sprintf("pod group %s cannot be admitted whole by its quota: its %d members need %s", key, need, reason), fitNever
	}
	d := tracker.CheckAdmit(ns, total)
	if d.Admit || d.Reclaimable {
		return "", fitNow
	}
	return fmt.Sprintf("pod group %s waits for quota for all %d members at once: %s", key, need, d.Reason), fitLater
}
