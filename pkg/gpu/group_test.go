package gpu

import (
	"slices"
	"testing"
)

// TestAllocateForGroupMembers: a pod group's members on one node keep
// together. The first member (Rest > 0) takes its GPU where the whole group
// fits, not where a lone pod would best fit; later members (Near) join the
// NUMA node / NVLink domain of the GPUs their group holds, falling back to
// the usual choice where that has no room.
func TestAllocateForGroupMembers(t *testing.T) {
	hgx := DefaultTopology("NVIDIA-H100-80GB-HBM3", 8) // one NVSwitch domain, NUMA 0: 0-3, 1: 4-7
	cliques := DefaultTopology("NVIDIA-H100-80GB-HBM3", 8)
	for i := range cliques.GPUs {
		cliques.GPUs[i].Domain = []string{"clique-a", "clique-b"}[i/4]
	}
	tests := []struct {
		name string
		topo Topology
		held []int
		req  Request
		want []int
	}{
		{name: "a lone pod best-fits the fuller NUMA node", topo: hgx, held: []int{0, 1, 5},
			req: Request{GPUs: 1}, want: []int{2}},
		{name: "the first of three members goes where all three fit", topo: hgx, held: []int{0, 1, 5},
			req: Request{GPUs: 1, Rest: 2}, want: []int{4}},
		{name: "a later member joins its group's NUMA node", topo: hgx, held: []int{0, 1, 4, 5},
			req: Request{GPUs: 1, Near: []int{4}}, want: []int{6}},
		{name: "no room near the group: the usual choice", topo: hgx, held: []int{0, 1, 5},
			req: Request{GPUs: 3, Near: []int{0}}, want: []int{4, 6, 7}},
		{name: "a later member joins its group's NVLink clique", topo: cliques, held: []int{0, 1, 3, 7},
			req: Request{GPUs: 1, Near: []int{1}}, want: []int{2}},
		{name: "a whole group that cannot fit the node: the usual choice", topo: hgx, held: []int{0, 1, 5},
			req: Request{GPUs: 2, Rest: 6}, want: []int{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewNodeState(tt.topo)
			for _, g := range tt.held {
				mustAdd(t, s, whole(g))
			}
			a, _, err := s.Allocate(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a.GPUs, tt.want) {
				t.Errorf("Allocate(%+v) = GPUs %v, want %v", tt.req, a.GPUs, tt.want)
			}
			if err := s.Add(a); err != nil {
				t.Errorf("the choice does not fit: %v", err)
			}
		})
	}
}
