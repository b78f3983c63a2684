package gpu

import (
	"reflect"
	"slices"
	"testing"
)

const a100 = "NVIDIA-A100-SXM4-80GB"

// mixedTopology is a node with two plain GPUs (0, 1), a MIG-dynamic GPU (2)
// and a MIG-static GPU (3) cut into two 3g instances.
func mixedTopology() Topology {
	return Topology{GPUs: []GPU{
		{Index: 0, Product: a100, NUMANode: 0},
		{Index: 1, Product: a100, NUMANode: 0},
		{Index: 2, Product: a100, NUMANode: 1, MIG: MIGDynamic},
		{Index: 3, Product: a100, NUMANode: 1, MIG: MIGStatic, Instances: []MIGInstance{{"3g.40gb", 4}, {"3g.40gb", 0}}},
	}}
}

func TestNodeStateCounters(t *testing.T) {
	s := NewNodeState(mixedTopology())
	type counts struct{ free, used, capacity int64 }
	check := func(step string, wantWhole int, want counts) {
		t.Helper()
		got := counts{s.FreeMilli(), s.UsedMilli(), s.Capacity()}
		if got != want || s.FreeWholeGPUs() != wantWhole {
			t.Errorf("%s: free/used/capacity %+v whole %d, want %+v whole %d", step, got, s.FreeWholeGPUs(), want, wantWhole)
		}
	}
	// The static GPU offers only its 6 configured slices: 6000/7 = 857.
	check("empty", 2, counts{3857, 0, 3857})
	mustAdd(t, s, whole(0))
	check("whole 0", 1, counts{2857, 1000, 3857})
	mustAdd(t, s, Assignment{Shares: []Share{{GPU: 1, Milli: 300}}})
	check("share on 1", 0, counts{2557, 1300, 3857})
	mustAdd(t, s, Assignment{MIG: []MIGSlot{{GPU: 2, Profile: "3g.40gb", Start: 4}}})
	check("created 3g on 2", 0, counts{0 + 700 + 571 + 857, 3857 - 2128, 3857})
	mustAdd(t, s, Assignment{MIG: []MIGSlot{{GPU: 3, Profile: "3g.40gb", Start: 0}}})
	check("existing 3g on 3", 0, counts{0 + 700 + 571 + 428, 3857 - 1699, 3857})
	if s.GPUCount() != 4 {
		t.Errorf("GPUCount() = %d", s.GPUCount())
	}

	var uses []GPUUse
	for _, g := range s.GPUs() {
		uses = append(uses, g.Use)
	}
	if want := []GPUUse{UseWhole, UseShared, UseMIG, UseMIG}; !slices.Equal(uses, want) {
		t.Errorf("uses %v, want %v", uses, want)
	}
	st := s.GPUs()[3]
	wantMIG := []MIGStatus{{Profile: "3g.40gb", Start: 0, Existing: true, Held: true}, {Profile: "3g.40gb", Start: 4, Existing: true}}
	if !reflect.DeepEqual(st.MIG, wantMIG) || st.FreeMilli != 428 || st.CapacityMilli != 857 {
		t.Errorf("GPU 3 status %+v", st)
	}
	if got := s.GPUs()[2].MIG; !reflect.DeepEqual(got, []MIGStatus{{Profile: "3g.40gb", Start: 4, Held: true}}) {
		t.Errorf("GPU 2 MIG %+v", got)
	}
	if g := s.GPUs()[1]; g.Shares != 1 || g.SharedMilli != 300 || g.Use.String() != "shared" {
		t.Errorf("GPU 1 status %+v", g)
	}
}

func TestAddErrors(t *testing.T) {
	held := []Assignment{
		whole(0),
		{Shares: []Share{{GPU: 1, Milli: 700}}},
		{MIG: []MIGSlot{{GPU: 2, Profile: "4g.40gb", Start: 0}}},
		{MIG: []MIGSlot{{GPU: 3, Profile: "3g.40gb", Start: 4}}},
	}
	tests := []struct {
		name string
		add  Assignment
		want []string
	}{
		{"missing GPU", whole(9), []string{"gpu 9 does not exist"}},
		{"whole twice", whole(0), []string{"gpu 0 is already used whole"}},
		{"whole on shared", whole(1), []string{"gpu 1 is shared", "700m"}},
		{"whole on MIG", whole(2), []string{"gpu 2 has MIG enabled"}},
		{"share on whole", Assignment{Shares: []Share{{0, 100}}}, []string{"gpu 0 is used whole"}},
		{"share over 1000", Assignment{Shares: []Share{{1, 400}}}, []string{"gpu 1", "400m exceeds the 300m free"}},
		{"share of zero", Assignment{Shares: []Share{{1, 0}}}, []string{"gpu 1", "0m is out of range"}},
		{"share on MIG", Assignment{Shares: []Share{{3, 100}}}, []string{"gpu 3 has MIG enabled"}},
		{"MIG on plain GPU", Assignment{MIG: []MIGSlot{{1, "1g.10gb", 0}}}, []string{"gpu 1 has MIG disabled"}},
		{"MIG overlap", Assignment{MIG: []MIGSlot{{2, "3g.40gb", 0}}}, []string{"gpu 2", "3g.40gb at 0 overlaps"}},
		{"MIG missing on static", Assignment{MIG: []MIGSlot{{3, "4g.40gb", 0}}}, []string{"gpu 3 is MIG-static", "4g.40gb", "at 0"}},
		{"MIG held twice", Assignment{MIG: []MIGSlot{{3, "3g.40gb", 4}}}, []string{"gpu 3", "at 4 is already held"}},
		{"two MIG parts overlap", Assignment{MIG: []MIGSlot{{2, "2g.20gb", 4}, {2, "1g.20gb", 4}}}, []string{"gpu 2", "1g.20gb at 4 overlaps"}},
		{"fails after a good part", Assignment{GPUs: []int{1}, Shares: []Share{{0, 10}}}, []string{"gpu 1 is shared"}},
		{"rolls back good parts", Assignment{MIG: []MIGSlot{{3, "3g.40gb", 0}}, Shares: []Share{{1, 301}}}, []string{"gpu 1", "301m exceeds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewNodeState(mixedTopology())
			for _, a := range held {
				mustAdd(t, s, a)
			}
			before := s.GPUs()
			wantErr(t, s.Add(tt.add), tt.want...)
			if after := s.GPUs(); !reflect.DeepEqual(before, after) {
				t.Errorf("failed Add changed the state:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	s := NewNodeState(mixedTopology())
	empty := s.GPUs()
	pods := []Assignment{
		whole(0),
		{Shares: []Share{{GPU: 1, Milli: 300}}},
		{Shares: []Share{{GPU: 1, Milli: 600}}},
		{MIG: []MIGSlot{{GPU: 2, Profile: "7g.80gb", Start: 0}}},
		{MIG: []MIGSlot{{GPU: 3, Profile: "3g.40gb", Start: 0}, {GPU: 3, Profile: "3g.40gb", Start: 4}}},
	}
	for _, a := range pods {
		mustAdd(t, s, a)
	}
	if s.FreeMilli() != 100 {
		t.Fatalf("FreeMilli() = %d, want 100", s.FreeMilli())
	}
	s.Remove(pods[1])
	if g := s.GPUs()[1]; g.SharedMilli != 600 || g.Shares != 1 {
		t.Errorf("after removing one share: %+v", g)
	}
	// A created instance is gone once removed: its slots can be reused.
	s.Remove(pods[3])
	mustAdd(t, s, Assignment{MIG: []MIGSlot{{GPU: 2, Profile: "3g.40gb", Start: 0}}})
	s.Remove(Assignment{MIG: []MIGSlot{{GPU: 2, Profile: "3g.40gb", Start: 0}}})
	for _, a := range pods {
		s.Remove(a)
	}
	if got := s.GPUs(); !reflect.DeepEqual(got, empty) {
		t.Errorf("after removing everything:\n%+v\nwant\n%+v", got, empty)
	}
	// Removing again, or removing what was never there, changes nothing.
	for _, a := range pods {
		s.Remove(a)
	}
	s.Remove(Assignment{GPUs: []int{42}, MIG: []MIGSlot{{GPU: 2, Profile: "1g.10gb", Start: 3}, {GPU: 0, Profile: "1g.10gb", Start: 3}}, Shares: []Share{{GPU: 9, Milli: 5}}})
	if got := s.GPUs(); !reflect.DeepEqual(got, empty) {
		t.Errorf("after removing twice: %+v", got)
	}
}

func TestClone(t *testing.T) {
	s := NewNodeState(mixedTopology())
	c := s.Clone()
	mustAdd(t, c, whole(0, 1))
	mustAdd(t, c, Assignment{MIG: []MIGSlot{{GPU: 2, Profile: "1g.10gb", Start: 6}}})
	if s.FreeWholeGPUs() != 2 || s.FreeMilli() != 3857 {
		t.Errorf("Clone shares state with the original")
	}
	topo := s.Topology()
	topo.GPUs[3].Instances[0].Profile = "7g.80gb"
	if s.Topology().GPUs[3].Instances[0].Profile != "3g.40gb" {
		t.Errorf("Topology() shares memory with the state")
	}
}

func TestNewNodeStateTolerance(t *testing.T) {
	input := Topology{GPUs: []GPU{
		{Index: 4, UUID: "first", Product: a100},
		{Index: 1, Product: a100, MIG: MIGStatic, Instances: []MIGInstance{{"4g.40gb", 0}, {"3g.40gb", 0}, {"3g.40gb", 4}, {"3g.40gb", 2}, {"nonsense", 0}}},
		{Index: 4, UUID: "second"},
		{Index: 2, Product: "NVIDIA-GB300", MIG: MIGDynamic, Instances: []MIGInstance{{"3g.139gb", 0}}},
		{Index: 3, Product: a100, Instances: []MIGInstance{{"7g.80gb", 0}}},
	}}
	s := NewNodeState(input)
	if input.GPUs[0].Index != 4 {
		t.Fatalf("NewNodeState reordered its input")
	}
	topo := s.Topology()
	var idx []int
	for _, g := range topo.GPUs {
		idx = append(idx, g.Index)
	}
	if !slices.Equal(idx, []int{1, 2, 3, 4}) || topo.GPUs[3].UUID != "first" {
		t.Errorf("topology %+v", topo.GPUs)
	}
	// GPU 1 keeps 4g@0 and 3g@4; the overlapping and unknown ones are dropped.
	var kept []MIGStatus
	for _, m := range s.GPUs()[0].MIG {
		kept = append(kept, m)
	}
	if want := []MIGStatus{{Profile: "4g.40gb", Start: 0, Existing: true}, {Profile: "3g.40gb", Start: 4, Existing: true}}; !reflect.DeepEqual(kept, want) {
		t.Errorf("GPU 1 instances %+v", kept)
	}
	// GPU 2's product is unknown: its instance is usable, nothing is created.
	a, _, err := s.Allocate(Request{MIG: []MIGRequest{{"3g.139gb", 1}}})
	if err != nil || !reflect.DeepEqual(a.MIG, []MIGSlot{{GPU: 2, Profile: "3g.139gb", Start: 0}}) {
		t.Errorf("Allocate on unknown product: %+v, %v", a, err)
	}
	mustAdd(t, s, a)
	_, _, err = s.Allocate(Request{MIG: []MIGRequest{{"3g.139gb", 1}}})
	if _, ok := err.(NoMIGSlot); !ok {
		t.Errorf("second instance on unknown product: %v, want NoMIGSlot", err)
	}
	wantErr(t, s.Add(Assignment{MIG: []MIGSlot{{GPU: 2, Profile: "3g.139gb", Start: 4}}}), "gpu 2 is MIG-static")
	// GPU 3 has MIG disabled, so its listed instance is ignored.
	if s.FreeWholeGPUs() != 2 {
		t.Errorf("FreeWholeGPUs() = %d, want 2 (GPUs 3 and 4)", s.FreeWholeGPUs())
	}
}

func TestAddUnknown(t *testing.T) {
	topo := DefaultTopology("NVIDIA-H100-PCIe", 4)
	s := NewNodeState(topo)
	mustAdd(t, s, whole(0, 2))
	// Locality is ignored: the pod already runs somewhere.
	a, err := s.AddUnknown(Request{GPUs: 2, Locality: LocalityRequired})
	if err != nil || !slices.Equal(a.GPUs, []int{1, 3}) {
		t.Fatalf("AddUnknown = %+v, %v", a, err)
	}
	if s.FreeWholeGPUs() != 0 {
		t.Errorf("AddUnknown did not record the guess")
	}
	_, err = s.AddUnknown(Request{ShareMilli: 10})
	if _, ok := err.(NoShareRoom); !ok {
		t.Errorf("over-booking AddUnknown: %v, want NoShareRoom", err)
	}
	if s.FreeMilli() != 0 {
		t.Errorf("failed AddUnknown recorded something")
	}
	// The guess is the same for every replica.
	for i := 0; i < 3; i++ {
		r := NewNodeState(topo)
		b, err := r.AddUnknown(Request{ShareMilli: 400, MIG: nil})
		if err != nil || !reflect.DeepEqual(b, Assignment{Shares: []Share{{GPU: 0, Milli: 400}}}) {
			t.Errorf("AddUnknown = %+v, %v", b, err)
		}
	}
}
