package gang

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/tessera-sched/tessera/pkg/gang"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/plugins/elasticquota"
	"github.com/tessera-sched/tessera/pkg/plugins/gpuplacement"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// simNode is a node in the whole-group simulation: its free CPU and memory
// and its GPU state (GPUPlacement's model, derived from labels and pods).
type simNode struct {
	node     *v1.Node
	cpu, mem int64
	gpus     *gpu.NodeState
}

// wholeGroupFits checks, before any member reserves anything, that the
// group's still-unplaced members fit the cluster at the same time: CPU,
// memory and device-level GPU fit (exact GPUs, MIG slots, shares), within
// one topology domain when the group requires it. A hopeless group so costs
// one check rather than minMember scheduling cycles with devices held.
// The namespace's quota is checked for the whole group too (see
// groupQuota). Other constraints (affinity, taints) are left to the
// members' own scheduling cycles; a group they reject fails its assembly
// and backs off.
//
// The result is fitNow, fitLater (the group would fit the same nodes empty:
// it waits for running work to finish, without a growing back-off) or
// fitNever.
func (pl *Gang) wholeGroupFits(key gang.GroupKey, nodes []fwk.NodeInfo) (string, fitResult) {
	pending, need := pl.mgr.Pending(key)
	if need <= 0 || pl.pods == nil {
		return "", fitNow
	}
	pl.mu.Lock()
	g := pl.groups[key]
	pl.mu.Unlock()

	var pods []*v1.Pod
	var members []gang.Member
	for _, ref := range pending {
		ns, name, _ := strings.Cut(ref.Name, "/")
		p, err := pl.pods.Pods(ns).Get(name)
		if err != nil {
			continue
		}
		size := int64(0)
		if r, ok, err := gpuplacement.RequestOn(p, &v1.Node{}); err == nil && ok {
			size = r.GPUEquivalentMilli()
		}
		pods = append(pods, p)
		members = append(members, gang.Member{Size: size})
	}
	if reason, res := pl.groupQuota(key, pods, need); res != fitNow {
		return reason, res
	}
	reason, placed, ok := simulate(g, need, pods, members, nodes, false)
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
	if _, _, okEmpty := simulate(g, need, pods, members, nodes, true); okEmpty {
		return fmt.Sprintf("pod group %s waits for room: %s; it fits once running pods finish", key, reason), fitLater
	}
	return fmt.Sprintf("pod group %s cannot be placed whole: %s", key, reason), fitNever
}

// fitResult is the outcome of the whole-group check.
type fitResult int

const (
	fitNow fitResult = iota
	fitLater
	fitNever
)

// simulate places the group's pending members greedily on nodes (as they
// are, or empty) with the real device-level GPU model, returning how many
// could be placed and whether that reaches need.
func simulate(g gang.Group, need int, pods []*v1.Pod, members []gang.Member, nodes []fwk.NodeInfo, empty bool) (string, int, bool) {
	sims := make([]*simNode, 0, len(nodes))
	caps := make([]gang.NodeCap, 0, len(nodes))
	free := map[string]int64{}
	for _, ni := range nodes {
		n := ni.Node()
		if n == nil {
			continue
		}
		var onNode []*v1.Pod
		s := &simNode{node: n, cpu: ni.GetAllocatable().GetMilliCPU(), mem: ni.GetAllocatable().GetMemory()}
		if !empty {
			for _, pi := range ni.GetPods() {
				onNode = append(onNode, pi.GetPod())
			}
			s.cpu -= ni.GetRequested().GetMilliCPU()
			s.mem -= ni.GetRequested().GetMemory()
		}
		s.gpus = gpuplacement.NodeGPUState(n, onNode)
		c := gang.NodeCap{}
		if s.gpus != nil {
			c.Free = s.gpus.FreeMilli()
			free["nvidia.com/gpu"] += int64(s.gpus.FreeWholeGPUs())
		}
		if g.Topology.Key != "" {
			c.Domain = n.Labels[g.Topology.Key]
		}
		free[string(v1.ResourceCPU)] += s.cpu
		free[string(v1.ResourceMemory)] += s.mem
		sims = append(sims, s)
		caps = append(caps, c)
	}
	if ok, reason := gang.CheckMinResources(g, free); !ok {
		return reason, 0, false
	}

	cpu := func(p *v1.Pod) (int64, int64) {
		var c, m int64
		for _, ctr := range p.Spec.Containers {
			c += ctr.Resources.Requests.Cpu().MilliValue()
			m += ctr.Resources.Requests.Memory().Value()
		}
		return c, m
	}
	fit := func(m, n int) bool {
		p, s := pods[m], sims[n]
		c, mem := cpu(p)
		if c > s.cpu || mem > s.mem {
			return false
		}
		r, ok, err := gpuplacement.RequestOn(p, s.node)
		if err != nil {
			return false
		}
		if !ok {
			return true
		}
		if s.gpus == nil {
			return false
		}
		_, _, err = s.gpus.Allocate(r)
		return err == nil
	}
	assume := func(m, n int) func() {
		p, s := pods[m], sims[n]
		c, mem := cpu(p)
		s.cpu, s.mem = s.cpu-c, s.mem-mem
		var a gpu.Assignment
		if r, ok, err := gpuplacement.RequestOn(p, s.node); err == nil && ok && s.gpus != nil {
			if got, _, err := s.gpus.Allocate(r); err == nil && s.gpus.Add(got) == nil {
				a = got
			}
		}
		return func() {
			s.cpu, s.mem = s.cpu+c, s.mem+mem
			if !a.IsZero() {
				s.gpus.Remove(a)
			}
		}
	}
	placement, ok := gang.FitsAll(members, need, caps, g.Topology, fit, assume)
	placed := 0
	for _, n := range placement {
		if n >= 0 {
			placed++
		}
	}
	return "", placed, ok
}

// minResources converts a PodGroup's minResources (CPU in milli, the rest
// in plain units).
func minResources(l v1.ResourceList) map[string]int64 {
	if len(l) == 0 {
		return nil
	}
	out := make(map[string]int64, len(l))
	for name, q := range l {
		out[string(name)] = amount(name, q)
	}
	return out
}

func amount(name v1.ResourceName, q resource.Quantity) int64 {
	if name == v1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// groupQuota checks the next need pending members of the group together
// against their namespace's ElasticQuota, so that quota never lets half a
// gang in: a group whose members alone exceed the quota's max can never
// run (fitNever); one that does not fit the quota now waits for it
// (fitLater) without reserving anything. A shortfall that reclaiming
// borrowed quota resolves passes: the members reclaim at PostFilter.
func (pl *Gang) groupQuota(key gang.GroupKey, pods []*v1.Pod, need int) (string, fitResult) {
	tracker := elasticquota.TrackerFor(pl.handle)
	if tracker == nil || len(pods) == 0 {
		return "", fitNow
	}
	ns := pods[0].Namespace
	total := quota.Resources{}
	for _, p := range pods[:min(need, len(pods))] {
		total = total.Add(elasticquota.PodCharge(p))
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
