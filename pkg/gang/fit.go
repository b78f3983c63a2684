package gang

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// Member is one pod in a whole-group fit check.
type Member struct {
	// Size is the pod's demand in the scarce resource, in the same unit as
	// NodeCap.Free (for GPU pods, milli-GPUs). It orders members, largest
	// first, and skips nodes whose Free is smaller; 0 leaves every decision
	// to the fit callback.
	Size int64
}

// NodeCap is one node in a whole-group fit check.
type NodeCap struct {
	// Free is the node's free amount of the scarce resource, in Member.Size
	// units; FitsAll lowers its own copy as it assumes members onto it and
	// prefers the node with the least left (best fit).
	Free int64
	// Domain is the node's value of the group's Topology.Key label, "" if
	// the node lacks it (or the group has no topology).
	Domain string
	// Rank puts the node before every node of lower Rank, whatever its
	// Free: the adapter ranks nodes that already hold members of the group
	// first, so that a plan made mid-assembly keeps the group where it
	// started. 0 for all nodes leaves the choice to best fit.
	Rank int
}

// FitsAll reports whether need of members can be placed on nodes at once,
// and where: placement[i] is the index of the node chosen for members[i],
// or -1. It is the early check that lets a hopeless group cost one
// simulation at the start of its assembly instead of MinMember scheduling
// cycles with devices reserved.
//
// The simulation is greedy: members largest first (ties in input order),
// each on the fitting node of the highest Rank, among those the one with
// the least Free left (ties in input order), a member that fits nowhere
// being skipped. The adapter supplies the real
// test: fit answers whether members[member] fits on nodes[node] given
// everything assumed so far (device-level GPU fit, quota, ...), and assume
// records that it is placed there and returns a function that undoes it.
// FitsAll undoes every assumption before it returns, so the adapter's state
// is left as it was; assume may be nil when fit keeps no state.
//
// With a required topology (topo.Key set, topo.Required) the group must fit
// within one domain: domains are tried one by one, the one with the least
// total Free first (best fit again, which keeps large domains for large
// groups), then by name, and nodes without the label are never used. With a
// preferred topology the domains are tried the same way, then the whole
// cluster. Greedy placement can miss a packing that exists; the cost is a
// false rejection followed by a back-off, never a deadlock.
func FitsAll(members []Member, need int, nodes []NodeCap, topo Topology, fit func(member, node int) bool, assume func(member, node int) (undo func())) (placement []int, ok bool) {
	if need <= 0 {
		return unplaced(len(members)), true
	}
	order := make([]int, len(members))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(members[b].Size, members[a].Size) })

	try := func(nodeIdx []int) ([]int, bool) {
		return place(members, order, need, nodes, nodeIdx, fit, assume)
	}
	if topo.Key != "" {
		for _, nodeIdx := range domains(nodes) {
			if placement, ok := try(nodeIdx); ok {
				return placement, true
			}
		}
		if topo.Required {
			return unplaced(len(members)), false
		}
	}
	all := make([]int, len(nodes))
	for i := range all {
		all[i] = i
	}
	return try(all)
}

// place runs one greedy attempt over the nodes listed in nodeIdx, undoing
// its assumptions before it returns.
func place(members []Member, order []int, need int, nodes []NodeCap, nodeIdx []int, fit func(member, node int) bool, assume func(member, node int) (undo func())) ([]int, bool) {
	free := make([]int64, len(nodes))
	for i, n := range nodes {
		free[i] = n.Free
	}
	placement := unplaced(len(members))
	var undos []func()
	defer func() {
		for i := len(undos) - 1; i >= 0; i-- {
			undos[i]()
		}
	}()
	placed := 0
	for k, mi := range order {
		if placed == need {
			break
		}
		if placed+len(order)-k < need {
			return placement, false
		}
		best := -1
		for _, ni := range nodeIdx {
			if free[ni] < members[mi].Size || (best >= 0 && !better(nodes, free, ni, best)) {
				continue
			}
			if fit(mi, ni) {
				best = ni
			}
		}
		if best < 0 {
			continue
		}
		placement[mi] = best
		free[best] -= members[mi].Size
		placed++
		if assume != nil {
			if undo := assume(mi, best); undo != nil {
				undos = append(undos, undo)
			}
		}
	}
	return placement, placed == need
}

// better reports whether node a is a better place than node b: a higher
// Rank, then less Free left.
func better(nodes []NodeCap, free []int64, a, b int) bool {
	if nodes[a].Rank != nodes[b].Rank {
		return nodes[a].Rank > nodes[b].Rank
	}
	return free[a] < free[b]
}

// domains returns, for every topology domain, the indexes of its nodes, the
// domain with the least total Free first, then by name. Nodes without a
// domain belong to none.
func domains(nodes []NodeCap) [][]int {
	byDomain := make(map[string][]int)
	total := make(map[string]int64)
	for i, n := range nodes {
		if n.Domain == "" {
			continue
		}
		byDomain[n.Domain] = append(byDomain[n.Domain], i)
		total[n.Domain] += n.Free
	}
	names := slices.Collect(maps.Keys(byDomain))
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(total[a], total[b]), cmp.Compare(a, b)) })
	out := make([][]int, len(names))
	for i, name := range names {
		out[i] = byDomain[name]
	}
	return out
}

func unplaced(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = -1
	}
	return p
}

// CheckMinResources compares a group's MinResources with what is free in
// the cluster (or the group's quota headroom), resource by resource in name
// order, and says which resource falls short. It is the cheap half of the
// early check, answering PodGroup.spec.minResources as scheduler-plugins
// does, before any per-node simulation.
func CheckMinResources(g Group, free map[string]int64) (ok bool, reason string) {
	for _, name := range slices.Sorted(maps.Keys(g.MinResources)) {
		if want, have := g.MinResources[name], free[name]; have < want {
			return false, fmt.Sprintf("pod group %s needs %d %s but %d are free", g.Key, want, name, have)
		}
	}
	return true, ""
}
