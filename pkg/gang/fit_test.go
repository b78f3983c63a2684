package gang

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// fakeNodes is the adapter's side of a fit check in these tests: a free
// GPU count per node that fit reads and assume changes, plus nodes that
// fit refuses whatever their capacity (a wrong GPU model, say).
type fakeNodes struct {
	free    []int64
	refused map[int]bool
	// assumed counts live assumptions, to check that all are undone.
	assumed int
}

func (f *fakeNodes) fit(sizes []int64) func(member, node int) bool {
	return func(member, node int) bool {
		return !f.refused[node] && f.free[node] >= sizes[member]
	}
}

func (f *fakeNodes) assume(sizes []int64) func(member, node int) func() {
	return func(member, node int) func() {
		f.free[node] -= sizes[member]
		f.assumed++
		return func() {
			f.free[node] += sizes[member]
			f.assumed--
		}
	}
}

func TestFitsAll(t *testing.T) {
	tests := []struct {
		name    string
		sizes   []int64
		need    int
		free    []int64
		domains []string
		ranks   []int
		topo    Topology
		refused map[int]bool
		// noSize passes Member.Size 0, leaving everything to fit.
		noSize bool
		want   []int
		wantOK bool
	}{
		{
			name:  "largest first: in input order 3,3,5 would leave no room for the last 5",
			sizes: []int64{3, 3, 5, 5}, need: 4, free: []int64{8, 8},
			want: []int{0, 1, 0, 1}, wantOK: true,
		},
		{
			name:  "best fit: first fit would put the 4 on the 6-GPU node and strand a 3",
			sizes: []int64{4, 3, 3}, need: 3, free: []int64{6, 4},
			want: []int{1, 0, 0}, wantOK: true,
		},
		{
			name:  "rank first: the node already holding members, though another fits tighter",
			sizes: []int64{2, 2}, need: 2, free: []int64{2, 6}, ranks: []int{0, 1},
			want: []int{1, 1}, wantOK: true,
		},
		{
			name:  "rank first until full, then best fit among the rest",
			sizes: []int64{4, 4, 4}, need: 3, free: []int64{8, 4, 6}, ranks: []int{0, 1, 0},
			want: []int{1, 2, 0}, wantOK: true,
		},
		{
			name:  "bigger than the cluster",
			sizes: []int64{8, 8, 8}, need: 3, free: []int64{8, 8},
			want: []int{0, 1, -1}, wantOK: false,
		},
		{
			name:  "only need members must fit",
			sizes: []int64{8, 8, 8}, need: 2, free: []int64{8, 8},
			want: []int{0, 1, -1}, wantOK: true,
		},
		{
			name:  "a member that fits nowhere is skipped",
			sizes: []int64{16, 4, 4}, need: 2, free: []int64{8, 8},
			want: []int{-1, 0, 0}, wantOK: true,
		},
		{
			name:  "nothing needed",
			sizes: []int64{100}, need: 0, free: []int64{1},
			want: []int{-1}, wantOK: true,
		},
		{
			name:  "fit's veto is honoured",
			sizes: []int64{4, 4}, need: 2, free: []int64{8, 8}, refused: map[int]bool{0: true},
			want: []int{1, 1}, wantOK: true,
		},
		{
			name:  "without sizes fit decides alone",
			sizes: []int64{4, 4, 4}, need: 3, free: []int64{8, 8}, noSize: true,
			want: []int{0, 0, 1}, wantOK: true,
		},
		{
			name:  "required topology: the one rack that holds the group",
			sizes: []int64{8, 8}, need: 2, free: []int64{8, 8, 8, 4},
			domains: []string{"rack-a", "rack-b", "rack-a", "rack-c"}, topo: Topology{Key: "rack", Required: true},
			want: []int{0, 2}, wantOK: true,
		},
		{
			name:  "required topology: no rack holds the group",
			sizes: []int64{8, 8, 8}, need: 3, free: []int64{8, 8, 8, 4},
			domains: []string{"rack-a", "rack-b", "rack-a", "rack-c"}, topo: Topology{Key: "rack", Required: true},
			want: []int{-1, -1, -1}, wantOK: false,
		},
		{
			name:  "preferred topology falls back to the whole cluster",
			sizes: []int64{8, 8, 8}, need: 3, free: []int64{8, 8, 8, 4},
			domains: []string{"rack-a", "rack-b", "rack-a", "rack-c"}, topo: Topology{Key: "rack"},
			want: []int{0, 1, 2}, wantOK: true,
		},
		{
			name:  "required topology: the tightest rack that fits, keeping big racks free",
			sizes: []int64{4}, need: 1, free: []int64{8, 8, 4},
			domains: []string{"rack-a", "rack-a", "rack-b"}, topo: Topology{Key: "rack", Required: true},
			want: []int{2}, wantOK: true,
		},
		{
			name:  "required topology never uses unlabelled nodes",
			sizes: []int64{1}, need: 1, free: []int64{8},
			domains: []string{""}, topo: Topology{Key: "rack", Required: true},
			want: []int{-1}, wantOK: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeNodes{free: slices.Clone(tt.free), refused: tt.refused}
			members := make([]Member, len(tt.sizes))
			for i, s := range tt.sizes {
				if !tt.noSize {
					members[i].Size = s
				}
			}
			nodes := make([]NodeCap, len(tt.free))
			for i, fr := range tt.free {
				nodes[i].Free = fr
				if tt.domains != nil {
					nodes[i].Domain = tt.domains[i]
				}
				if tt.ranks != nil {
					nodes[i].Rank = tt.ranks[i]
				}
			}
			got, ok := FitsAll(members, tt.need, nodes, tt.topo, f.fit(tt.sizes), f.assume(tt.sizes))
			if ok != tt.wantOK || !slices.Equal(got, tt.want) {
				t.Errorf("FitsAll() = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
			if f.assumed != 0 || !slices.Equal(f.free, tt.free) {
				t.Errorf("state not restored: %d assumptions live, free %v, want %v", f.assumed, f.free, tt.free)
			}
		})
	}
}

func TestFitsAllNilAssume(t *testing.T) {
	members := []Member{{Size: 5}, {Size: 5}}
	nodes := []NodeCap{{Free: 8}, {Free: 8}}
	got, ok := FitsAll(members, 2, nodes, Topology{}, func(int, int) bool { return true }, nil)
	if !ok || !slices.Equal(got, []int{0, 1}) {
		t.Errorf("FitsAll() = %v, %v; want [0 1], true", got, ok)
	}
}

func TestCheckMinResources(t *testing.T) {
	g := Group{Key: key("ddp"), MinResources: map[string]int64{"nvidia.com/gpu": 16, "cpu": 8000}}
	tests := []struct {
		name   string
		g      Group
		free   map[string]int64
		wantOK bool
		want   string
	}{
		{name: "enough", g: g, free: map[string]int64{"nvidia.com/gpu": 16, "cpu": 64000}, wantOK: true},
		{name: "short of GPUs", g: g, free: map[string]int64{"nvidia.com/gpu": 8, "cpu": 64000}, want: "pod group team-a/ddp needs 16 nvidia.com/gpu but 8 are free"},
		{name: "first short resource by name", g: g, free: map[string]int64{}, want: "pod group team-a/ddp needs 8000 cpu but 0 are free"},
		{name: "no minResources", g: Group{Key: key("ddp")}, free: nil, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := CheckMinResources(tt.g, tt.free)
			if ok != tt.wantOK || reason != tt.want {
				t.Errorf("CheckMinResources() = %v, %q; want %v, %q", ok, reason, tt.wantOK, tt.want)
			}
		})
	}
}

// TestGroupBiggerThanCluster drives the Manager as the adapter does: a
// group that cannot fit is rejected by the early check each time it gets
// the slot, never reserves anything, backs off longer and longer, and does
// not stop a group that fits from assembling.
func TestGroupBiggerThanCluster(t *testing.T) {
	m := NewManager(testConfig)
	m.SetGroup(Group{Key: key("huge"), MinMember: 3, Created: t0})
	addMembers(m, "huge", 0, 3, 0)
	addGroup(m, "small", 2, 2, 0, time.Hour)
	gpus := map[GroupKey]int64{key("huge"): 8, key("small"): 4}
	cluster := &fakeNodes{free: []int64{8, 8}}

	// preFilter is the adapter's PreFilter for one pod.
	preFilter := func(uid string, now time.Time) bool {
		if rej := m.Expire(now); len(rej) > 0 {
			t.Fatalf("Expire rejected %v", rej)
		}
		a := m.TryAssemble(uid, now)
		if !a.OK || !a.Started {
			return a.OK
		}
		g := mustGang(t, m, uid)
		pending, need := m.Pending(g)
		sizes := make([]int64, len(pending))
		members := make([]Member, len(pending))
		for i := range pending {
			sizes[i] = gpus[g]
			members[i].Size = gpus[g]
		}
		nodes := []NodeCap{{Free: cluster.free[0]}, {Free: cluster.free[1]}}
		if _, ok := FitsAll(members, need, nodes, Topology{}, cluster.fit(sizes), cluster.assume(sizes)); !ok {
			if rej := m.Reject(g, now, fmt.Sprintf("pod group %s does not fit", g)); rej != nil {
				t.Fatalf("early rejection released %v, but nothing should have been reserved", rej)
			}
			return false
		}
		return true
	}

	now := t0
	var retries []time.Duration
	for attempt := 0; attempt < 5; attempt++ {
		d := m.PreEnqueue("huge-0", now)
		if !d.Allow {
			t.Fatalf("attempt %d: PreEnqueue = %+v", attempt, d)
		}
		if preFilter("huge-0", now) {
			t.Fatalf("attempt %d: a group bigger than the cluster passed PreFilter", attempt)
		}
		if s, _ := m.Status(key("huge"), now); s.Waiting != 0 || s.Scheduled != 0 {
			t.Fatalf("attempt %d: huge holds something: %+v", attempt, s)
		}
		if _, _, held := m.Holder(); held {
			t.Fatalf("attempt %d: slot held after early rejection", attempt)
		}
		// While huge backs off, small assembles.
		if attempt == 0 {
			for _, uid := range []string{"small-0", "small-1"} {
				if !preFilter(uid, now) {
					t.Fatalf("PreFilter(%s) failed", uid)
				}
				m.Permit(uid, "n1", now)
			}
			if s, _ := m.Status(key("small"), now); s.Phase != PhaseScheduled {
				t.Fatalf("small did not assemble: %+v", s)
			}
		}
		d = m.PreEnqueue("huge-0", now)
		retries = append(retries, d.RetryAfter)
		now = now.Add(d.RetryAfter)
	}
	if want := []time.Duration{1, 2, 4, 8, 8}; !slices.Equal(retries, scale(want, time.Second)) {
		t.Errorf("back-offs = %v, want %v seconds", retries, want)
	}
	if st := m.Stats(now); st.Rejected != 5 || st.TimedOut != 0 {
		t.Errorf("Stats = %v, want 5 early rejections", st)
	}
}

func scale(ds []time.Duration, unit time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d * unit
	}
	return out
}
