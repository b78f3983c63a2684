package gang

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
)

// Room held for the assembling group.
//
// One group at a time assembles (holds the slot), but the scheduler keeps
// scheduling other pods between its members' cycles: members reach the
// queue at different moments, back off, or are activated behind pods
// already popped. A pod that takes the room the group's next members were
// going to use scatters the group over more nodes than it needs (its first
// members already wait at Permit on the node it started on), or fails the
// assembly. So while a group assembles, the room its pending members will
// take is held: the whole-group simulation plans them, nodes already
// holding members first (gangcore.NodeCap.Rank), then best fit, as the
// members' own Score will; a pod outside the group, of no higher priority,
// does not pass Filter on a planned node where it would leave the planned
// members no room. The hold ends with the assembly (bound, failed or timed
// out, within the group's scheduleTimeoutSeconds), and the pods it turned
// away are activated then.
//
// A pod of higher priority is not held back (it may take the room; the
// group then finds less and may fail its assembly, as it would have
// before). A plan that does not fit the whole group holds nothing: holding
// room for a group that cannot complete would only idle it.

const holdKey fwk.StateKey = Name + "/hold"

// holdPlanMaxAge bounds how long a plan is reused for the pods scheduled
// while a group assembles; a plan is remade sooner when the group's
// pending members change. Filter re-checks fit on the live node, so an old
// plan can only be wrong about which node to hold, never about room.
const holdPlanMaxAge = time.Second

// holdPlan is where the assembling group's pending members are planned.
type holdPlan struct {
	key gangcore.GroupKey
	// sim holds the pending members and their derived requests; onNode
	// lists, per node name, the indexes of the members planned there.
	sim    *groupSim
	onNode map[string][]int
	sig    string
	at     time.Time
}

func (h *holdPlan) Clone() fwk.StateData { return h }

// holdFor returns the plan of the group holding the assembly slot for a
// pod outside that group, or nil when nothing is held against the pod.
func (pl *Gang) holdFor(pod *v1.Pod, nodes []fwk.NodeInfo) *holdPlan {
	holder, _, held := pl.mgr.Holder()
	if !held || pl.pods == nil {
		return nil
	}
	g, pods, members, need := pl.pendingMembers(holder)
	if need <= 0 || len(pods) == 0 || corev1helpers.PodPriority(pod) > g.Priority {
		return nil
	}
	var sig strings.Builder
	sig.WriteString(string(holder))
	for _, p := range pods {
		sig.WriteString("/" + string(p.UID))
	}
	now := pl.now()
	pl.mu.Lock()
	cached := pl.hold
	pl.mu.Unlock()
	if cached != nil && cached.sig == sig.String() && now.Sub(cached.at) < holdPlanMaxAge {
		if cached.onNode == nil {
			return nil
		}
		return cached
	}
	h := &holdPlan{key: holder, sig: sig.String(), at: now}
	sim := pl.newGroupSim(g, need, pods, members, nodes, false, nil)
	sim.ranks = make([]int, len(sim.infos))
	for i, ni := range sim.infos {
		for _, pi := range ni.GetPods() {
			if groupKeyOf(pi.GetPod()) == holder {
				sim.ranks[i]++
			}
		}
	}
	if _, _, ok := sim.run(); ok {
		h.sim, h.onNode = sim, map[string][]int{}
		for m, n := range sim.placement {
			if n >= 0 {
				name := sim.infos[n].Node().Name
				h.onNode[name] = append(h.onNode[name], m)
			}
		}
	}
	pl.mu.Lock()
	pl.hold = h
	pl.mu.Unlock()
	if h.onNode == nil {
		return nil
	}
	return h
}

// Filter turns a pod outside the assembling group away from a node where
// it would leave the group's planned members no room (see holdFor). Members
// planned on the node that no longer fit it are not held for.
func (pl *Gang) Filter(_ context.Context, cs fwk.CycleState, pod *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	d, err := cs.Read(holdKey)
	if err != nil {
		return nil
	}
	h, ok := d.(*holdPlan)
	if !ok || ni.Node() == nil {
		return nil
	}
	planned := h.onNode[ni.Node().Name]
	if len(planned) == 0 {
		return nil
	}
	sn := h.sim.buildNode(ni, false, nil)
	held := 0
	for _, m := range planned {
		if h.sim.fits(h.sim.pods[m], &h.sim.reqs[m], sn) {
			h.sim.assumeOn(&h.sim.reqs[m], sn)
			held++
		}
	}
	if held == 0 {
		return nil
	}
	req := reqOf(pod)
	if req.invalid || h.sim.fits(pod, &req, sn) {
		return nil
	}
	pl.mu.Lock()
	pl.heldOff[pod.UID] = pod
	pl.mu.Unlock()
	noun := "members"
	if held == 1 {
		noun = "member"
	}
	// Unresolvable: evicting pods for a hold that lasts seconds would be
	// worse than waiting for it.
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("room held for %d %s of pod group %s, which is being placed", held, noun, h.key))
}

// releaseHeld activates the pods a hold turned away, once no group holds
// the slot.
func (pl *Gang) releaseHeld(logger klog.Logger) {
	pl.mu.Lock()
	if len(pl.heldOff) == 0 {
		pl.mu.Unlock()
		return
	}
	held := pl.heldOff
	pl.heldOff = map[types.UID]*v1.Pod{}
	pl.hold = nil
	pl.mu.Unlock()
	pods := make(map[string]*v1.Pod, len(held))
	for _, p := range held {
		pods[p.Namespace+"/"+p.Name] = p
	}
	pl.handle.Activate(logger, pods)
}

var _ fwk.FilterPlugin = &Gang{}
