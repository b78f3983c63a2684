package gpu

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

func TestAllocateWholeLocality(t *testing.T) {
	sxm8 := DefaultTopology("NVIDIA-H100-80GB-HBM3", 8)
	pcie8 := DefaultTopology("NVIDIA-H100-PCIe", 8)
	nvl8 := DefaultTopology("NVIDIA-H100-NVL", 8)
	// Two NVSwitch boards of four, each on its own NUMA node.
	twoBoards := DefaultTopology("NVIDIA-A100-SXM4-40GB", 8)
	for i := range twoBoards.GPUs {
		twoBoards.GPUs[i].Domain = []string{"board-a", "board-b"}[i/4]
	}
	// PCIe GPUs behind two switches per NUMA node.
	switched := DefaultTopology("NVIDIA-A100-PCIE-40GB", 8)
	for i := range switched.GPUs {
		switched.GPUs[i].PCIeSwitch = []string{"sw0", "sw1", "sw2", "sw3"}[i/2]
	}
	tests := []struct {
		name      string
		topo      Topology
		used      []int
		req       Request
		want      []int
		wantLevel LocalityLevel
		wantNUMA  int
		wantErr   error
	}{
		{
			name: "two on one NUMA inside the NVSwitch domain",
			topo: sxm8, used: []int{0, 1, 4, 5}, req: Request{GPUs: 2},
			want: []int{2, 3}, wantLevel: LocalityDomain, wantNUMA: 0,
		},
		{
			name: "best-fit NUMA inside the domain",
			topo: sxm8, used: []int{0, 1, 2, 4}, req: Request{GPUs: 2},
			want: []int{5, 6}, wantLevel: LocalityDomain, wantNUMA: 1,
		},
		{
			name: "four over two NUMA nodes still in one domain",
			topo: sxm8, used: []int{0, 1, 4, 5}, req: Request{GPUs: 4, Locality: LocalityRequired},
			want: []int{2, 3, 6, 7}, wantLevel: LocalityDomain, wantNUMA: -1,
		},
		{
			name: "PCIe: two on one NUMA node",
			topo: pcie8, used: []int{0, 1, 4, 5}, req: Request{GPUs: 2},
			want: []int{2, 3}, wantLevel: LocalityNUMA, wantNUMA: 0,
		},
		{
			name: "PCIe: best-fit NUMA node",
			topo: pcie8, used: []int{0, 4, 5}, req: Request{GPUs: 2},
			want: []int{6, 7}, wantLevel: LocalityNUMA, wantNUMA: 1,
		},
		{
			name: "PCIe: 2+2 split, required fails",
			topo: pcie8, used: []int{0, 1, 4, 5}, req: Request{GPUs: 4, Locality: LocalityRequired},
			wantErr: NoLocalDomain{Want: 4},
		},
		{
			name: "PCIe: 2+2 split, preferred spreads",
			topo: pcie8, used: []int{0, 1, 4, 5}, req: Request{GPUs: 4},
			want: []int{2, 3, 6, 7}, wantLevel: LocalityNone, wantNUMA: -1,
		},
		{
			name: "PCIe: spread takes the largest group whole first",
			topo: pcie8, used: []int{0}, req: Request{GPUs: 5},
			want: []int{1, 4, 5, 6, 7}, wantLevel: LocalityNone, wantNUMA: -1,
		},
		{
			name: "PCIe: spread keeps the other group whole when it can",
			topo: pcie8, used: []int{0, 1, 2}, req: Request{GPUs: 5},
			want: []int{3, 4, 5, 6, 7}, wantLevel: LocalityNone, wantNUMA: -1,
		},
		{
			name: "too few free",
			topo: sxm8, used: []int{0, 1, 2, 3, 4}, req: Request{GPUs: 4},
			wantErr: InsufficientGPUs{Want: 4, Free: 3},
		},
		{
			name: "best-fit domain keeps the empty board whole",
			topo: twoBoards, used: []int{0, 1}, req: Request{GPUs: 2},
			want: []int{2, 3}, wantLevel: LocalityDomain, wantNUMA: 0,
		},
		{
			name: "domain beats NUMA",
			topo: twoBoards, used: []int{0, 1, 2}, req: Request{GPUs: 2},
			want: []int{4, 5}, wantLevel: LocalityDomain, wantNUMA: 1,
		},
		{
			name: "no domain fits, required fails",
			topo: twoBoards, used: []int{0, 1, 4, 5}, req: Request{GPUs: 3, Locality: LocalityRequired},
			wantErr: NoLocalDomain{Want: 3},
		},
		{
			name: "NVL: a bridged pair first",
			topo: nvl8, used: []int{0, 3}, req: Request{GPUs: 2},
			want: []int{4, 5}, wantLevel: LocalityDomain, wantNUMA: 1,
		},
		{
			name: "NVL: four on a NUMA node, keeping pairs",
			topo: nvl8, used: []int{1}, req: Request{GPUs: 4, Locality: LocalityRequired},
			want: []int{4, 5, 6, 7}, wantLevel: LocalityNUMA, wantNUMA: 1,
		},
		{
			name: "NVL: three on a NUMA node take a whole pair",
			topo: nvl8, used: []int{}, req: Request{GPUs: 3},
			want: []int{0, 1, 2}, wantLevel: LocalityNUMA, wantNUMA: 0,
		},
		{
			name: "NVL: six spread over whole pairs",
			topo: nvl8, used: []int{2}, req: Request{GPUs: 6},
			want: []int{0, 1, 4, 5, 6, 7}, wantLevel: LocalityNone, wantNUMA: -1,
		},
		{
			name: "best-fit NUMA node before PCIe switch",
			topo: switched, used: []int{0, 2}, req: Request{GPUs: 2},
			want: []int{1, 3}, wantLevel: LocalityNUMA, wantNUMA: 0,
		},
		{
			name: "PCIe switch inside the NUMA node",
			topo: switched, used: []int{0}, req: Request{GPUs: 2},
			want: []int{2, 3}, wantLevel: LocalityNUMA, wantNUMA: 0,
		},
		{
			name: "lone PCIe-switch GPUs are used before breaking a pair",
			topo: switched, used: []int{0, 2, 4}, req: Request{GPUs: 1},
			want: []int{1}, wantLevel: LocalityDomain, wantNUMA: 0,
		},
		{
			name: "single GPU is trivially local",
			topo: pcie8, used: []int{0, 1, 2, 3, 4, 5}, req: Request{GPUs: 1, Locality: LocalityRequired},
			want: []int{6}, wantLevel: LocalityDomain, wantNUMA: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewNodeState(tt.topo)
			if len(tt.used) > 0 {
				mustAdd(t, s, whole(tt.used...))
			}
			before := s.GPUs()
			a, pl, err := s.Allocate(tt.req)
			if !reflect.DeepEqual(s.GPUs(), before) {
				t.Errorf("Allocate changed the state")
			}
			if tt.wantErr != nil {
				if !reflect.DeepEqual(err, tt.wantErr) {
					t.Fatalf("err = %#v, want %#v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			if !slices.Equal(a.GPUs, tt.want) || pl.Level != tt.wantLevel || pl.NUMANode != tt.wantNUMA {
				t.Errorf("got %v %+v, want %v level %v NUMA %d", a.GPUs, pl, tt.want, tt.wantLevel, tt.wantNUMA)
			}
			mustAdd(t, s, a)
		})
	}
}

func TestAllocatePlacementDomain(t *testing.T) {
	s := NewNodeState(DefaultTopology("NVIDIA-B200", 8))
	_, pl, err := s.Allocate(Request{GPUs: 8})
	if err != nil || pl != (Placement{Level: LocalityDomain, Domain: "nvswitch-0", NUMANode: -1}) {
		t.Errorf("8 of 8: %+v, %v", pl, err)
	}
	_, pl, err = s.Allocate(Request{ShareMilli: 5})
	if err != nil || pl != (Placement{Level: LocalityDomain, NUMANode: -1}) {
		t.Errorf("share only: %+v, %v", pl, err)
	}
}

func TestAllocateSharePacking(t *testing.T) {
	topo := DefaultTopology("NVIDIA-H100-80GB-HBM3", 8)
	tests := []struct {
		name   string
		whole  []int
		shares []Share
		milli  int
		want   int
	}{
		{name: "empty node: first GPU", milli: 300, want: 0},
		{name: "best fit among shared GPUs", shares: []Share{{0, 300}, {1, 700}, {2, 500}}, milli: 250, want: 1},
		{name: "exact fit", shares: []Share{{0, 300}, {1, 700}, {2, 500}}, milli: 500, want: 2},
		{name: "the fullest shared GPU that fits", shares: []Share{{0, 300}, {1, 700}, {2, 500}}, milli: 301, want: 2},
		{name: "no shared GPU fits: a free one", shares: []Share{{0, 300}, {1, 700}, {2, 500}}, milli: 800, want: 3},
		{
			name:  "free GPU from the fuller NUMA node",
			whole: []int{4, 5, 6}, milli: 100, want: 7,
		},
		{
			name:  "free GPU from the fuller NUMA node despite a full shared GPU",
			whole: []int{0, 1}, shares: []Share{{4, 1000 - 100}}, milli: 200, want: 2,
		},
		{name: "never a whole GPU", whole: []int{0, 1, 2, 3, 4, 5, 6}, milli: 999, want: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewNodeState(topo)
			mustAdd(t, s, Assignment{GPUs: tt.whole, Shares: tt.shares})
			a, _, err := s.Allocate(Request{ShareMilli: tt.milli})
			if err != nil {
				t.Fatal(err)
			}
			if want := []Share{{GPU: tt.want, Milli: tt.milli}}; !reflect.DeepEqual(a.Shares, want) || a.GPUs != nil || a.MIG != nil {
				t.Errorf("got %+v, want shares %v", a, want)
			}
		})
	}
}

func TestAllocateShareAvoidsBigDomain(t *testing.T) {
	// Two NVSwitch boards; board b has fewer free GPUs, so shares go there.
	topo := DefaultTopology("NVIDIA-A100-SXM4-40GB", 8)
	for i := range topo.GPUs {
		topo.GPUs[i].Domain = []string{"a", "b"}[i/4]
	}
	s := NewNodeState(topo)
	mustAdd(t, s, whole(4))
	a, _, err := s.Allocate(Request{ShareMilli: 500})
	if err != nil || !reflect.DeepEqual(a.Shares, []Share{{5, 500}}) {
		t.Errorf("got %+v, %v; want a share on GPU 5", a, err)
	}
}

func TestAllocateShareErrors(t *testing.T) {
	s := NewNodeState(mixedTopology())
	mustAdd(t, s, Assignment{GPUs: []int{0}, Shares: []Share{{1, 600}}})
	_, _, err := s.Allocate(Request{ShareMilli: 401})
	if !reflect.DeepEqual(err, NoShareRoom{Milli: 401}) {
		t.Errorf("err = %v, want NoShareRoom", err)
	}
	a, _, err := s.Allocate(Request{ShareMilli: 400})
	if err != nil || !reflect.DeepEqual(a.Shares, []Share{{1, 400}}) {
		t.Errorf("got %+v, %v", a, err)
	}
}

func TestAllocateMIGDynamicStarts(t *testing.T) {
	tests := []struct {
		name     string
		existing []MIGSlot // held before
		profile  string
		want     int
	}{
		// After 3g at 4 a 4g still fits at 0; after 3g at 0 only a 3g fits.
		{name: "3g goes to 4", profile: "3g.40gb", want: 4},
		// 1g at 6 leaves 4g, 3g and 2g at 0, 2, 4: the most placements.
		{name: "1g goes to 6", profile: "1g.10gb", want: 6},
		{name: "double 1g goes to 6", profile: "1g.20gb", want: 6},
		{name: "2g goes to 4", profile: "2g.20gb", want: 4},
		{name: "4g and 7g have one start", profile: "4g.40gb", want: 0},
		{name: "second 1g next to the first", existing: []MIGSlot{{0, "1g.10gb", 6}}, profile: "1g.10gb", want: 5},
		{name: "1g below a 4g when the 3g slot is gone", existing: []MIGSlot{{0, "1g.10gb", 6}, {0, "1g.10gb", 5}, {0, "1g.10gb", 4}}, profile: "1g.10gb", want: 3},
		{name: "3g beside a 4g", existing: []MIGSlot{{0, "4g.40gb", 0}}, profile: "3g.40gb", want: 4},
		{name: "2g beside a 3g: equal choices, the higher start", existing: []MIGSlot{{0, "3g.40gb", 4}}, profile: "2g.20gb", want: 2},
		{name: "1g after a 2g at 4 fills 6", existing: []MIGSlot{{0, "2g.20gb", 4}}, profile: "1g.10gb", want: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewNodeState(migTopology(a100, 1, MIGDynamic))
			if len(tt.existing) > 0 {
				mustAdd(t, s, Assignment{MIG: tt.existing})
			}
			a, _, err := s.Allocate(Request{MIG: []MIGRequest{{tt.profile, 1}}})
			if err != nil {
				t.Fatal(err)
			}
			if want := []MIGSlot{{GPU: 0, Profile: tt.profile, Start: tt.want}}; !reflect.DeepEqual(a.MIG, want) {
				t.Errorf("got %+v, want %+v", a.MIG, want)
			}
		})
	}
}

func TestAllocateMIGFillsGPU(t *testing.T) {
	// Seven 1g requests one by one pack one GPU completely, in the order
	// that keeps the largest profile available longest.
	s := NewNodeState(migTopology("NVIDIA-H200", 2, MIGDynamic))
	var starts []int
	for i := 0; i < 7; i++ {
		a, _, err := s.Allocate(Request{MIG: []MIGRequest{{"1g.18gb", 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if a.MIG[0].GPU != 0 {
			t.Fatalf("instance %d went to GPU %d; the used GPU has room", i, a.MIG[0].GPU)
		}
		starts = append(starts, a.MIG[0].Start)
		mustAdd(t, s, a)
	}
	if want := []int{6, 5, 4, 3, 2, 1, 0}; !slices.Equal(starts, want) {
		t.Errorf("starts %v, want %v", starts, want)
	}
	a, _, err := s.Allocate(Request{MIG: []MIGRequest{{"1g.18gb", 1}}})
	if err != nil || a.MIG[0].GPU != 1 {
		t.Errorf("eighth 1g: %+v, %v", a, err)
	}
}

func TestAllocateMIGChoices(t *testing.T) {
	topo := Topology{GPUs: []GPU{
		{Index: 0, Product: a100},
		{Index: 1, Product: a100, MIG: MIGDynamic},
		{Index: 2, Product: a100, MIG: MIGDynamic, Instances: []MIGInstance{{"2g.20gb", 0}}},
		{Index: 3, Product: a100, MIG: MIGStatic, Instances: []MIGInstance{{"3g.40gb", 0}, {"3g.40gb", 4}}},
		{Index: 4, Product: a100, MIG: MIGStatic, Instances: []MIGInstance{{"2g.20gb", 2}, {"1g.10gb", 6}}},
	}}
	tests := []struct {
		name    string
		held    []MIGSlot
		req     []MIGRequest
		want    []MIGSlot
		wantErr error
	}{
		{
			name: "existing instance before creating one",
			req:  []MIGRequest{{"3g.40gb", 1}},
			want: []MIGSlot{{3, "3g.40gb", 0}},
		},
		{
			name: "existing instance on the GPU with least free capacity",
			req:  []MIGRequest{{"2g.20gb", 1}},
			want: []MIGSlot{{4, "2g.20gb", 2}},
		},
		{
			name: "existing instance on a dynamic GPU before creating one",
			held: []MIGSlot{{4, "2g.20gb", 2}},
			req:  []MIGRequest{{"2g.20gb", 1}},
			want: []MIGSlot{{2, "2g.20gb", 0}},
		},
		{
			name: "static GPUs offer only their instances; then the busiest dynamic GPU",
			held: []MIGSlot{{3, "3g.40gb", 0}, {3, "3g.40gb", 4}},
			req:  []MIGRequest{{"3g.40gb", 1}},
			want: []MIGSlot{{2, "3g.40gb", 4}},
		},
		{
			name: "parts of one request never overlap",
			req:  []MIGRequest{{"3g.40gb", 3}, {"4g.40gb", 1}},
			want: []MIGSlot{{1, "4g.40gb", 0}, {1, "3g.40gb", 4}, {3, "3g.40gb", 0}, {3, "3g.40gb", 4}},
		},
		{
			name: "profile names are matched ignoring case",
			req:  []MIGRequest{{"1G.10GB", 1}},
			want: []MIGSlot{{4, "1g.10gb", 6}},
		},
		{
			name:    "second 7g does not fit",
			req:     []MIGRequest{{"7g.80gb", 2}},
			wantErr: NoMIGSlot{Profile: "7g.80gb", Want: 1},
		},
		{
			name:    "profile of another product",
			req:     []MIGRequest{{"3g.20gb", 1}},
			wantErr: UnknownProfile{Profile: "3g.20gb"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewNodeState(topo)
			if len(tt.held) > 0 {
				mustAdd(t, s, Assignment{MIG: tt.held})
			}
			a, _, err := s.Allocate(Request{MIG: tt.req})
			if tt.wantErr != nil {
				if !reflect.DeepEqual(err, tt.wantErr) {
					t.Fatalf("err = %#v, want %#v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.MIG, tt.want) {
				t.Errorf("got %+v, want %+v", a.MIG, tt.want)
			}
			mustAdd(t, s, a)
		})
	}
}

func TestAllocateKeepsKindsApart(t *testing.T) {
	// A node of plain GPUs offers no MIG; a node of MIG GPUs no whole GPUs
	// or shares.
	plain := NewNodeState(DefaultTopology(a100, 2))
	_, _, err := plain.Allocate(Request{MIG: []MIGRequest{{"1g.10gb", 1}}})
	if !reflect.DeepEqual(err, NoMIGSlot{Profile: "1g.10gb", Want: 1}) {
		t.Errorf("MIG on plain GPUs: %v", err)
	}
	mig := NewNodeState(migTopology(a100, 2, MIGDynamic))
	_, _, err = mig.Allocate(Request{GPUs: 1})
	if !reflect.DeepEqual(err, InsufficientGPUs{Want: 1, Free: 0}) {
		t.Errorf("whole GPU on MIG GPUs: %v", err)
	}
	_, _, err = mig.Allocate(Request{ShareMilli: 100})
	if !reflect.DeepEqual(err, NoShareRoom{Milli: 100}) {
		t.Errorf("share on MIG GPUs: %v", err)
	}
}

func TestAllocateCombined(t *testing.T) {
	s := NewNodeState(mixedTopology())
	a, _, err := s.Allocate(Request{GPUs: 1, ShareMilli: 250, MIG: []MIGRequest{{"3g.40gb", 2}}})
	if err != nil {
		t.Fatal(err)
	}
	want := Assignment{
		GPUs:   []int{0},
		MIG:    []MIGSlot{{3, "3g.40gb", 0}, {3, "3g.40gb", 4}},
		Shares: []Share{{1, 250}},
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("got %+v\nwant %+v", a, want)
	}
	mustAdd(t, s, a)
	// Whole GPUs are placed before the share, so a request for two whole
	// GPUs and a share fails on a node with two free GPUs only for lack of
	// share room, never by a share taking a whole GPU first.
	s = NewNodeState(mixedTopology())
	_, _, err = s.Allocate(Request{GPUs: 2, ShareMilli: 10})
	if !reflect.DeepEqual(err, NoShareRoom{Milli: 10}) {
		t.Errorf("err = %v", err)
	}
}

func TestAllocateInvalid(t *testing.T) {
	s := NewNodeState(mixedTopology())
	_, _, err := s.Allocate(Request{ShareMilli: 1000})
	var inv InvalidRequest
	if !errors.As(err, &inv) || inv.Field != "shareMilli" {
		t.Errorf("err = %v", err)
	}
	a, pl, err := s.Allocate(Request{})
	if err != nil || !a.IsZero() || pl.Level != LocalityDomain {
		t.Errorf("empty request: %+v %+v %v", a, pl, err)
	}
}

func TestAllocateDeterministic(t *testing.T) {
	topo := DefaultTopology("NVIDIA-H100-NVL", 8)
	topo.GPUs[7].MIG = MIGDynamic
	topo.GPUs[6].MIG = MIGStatic
	topo.GPUs[6].Instances = []MIGInstance{{"1g.12gb", 0}, {"3g.47gb", 4}}
	reqs := []Request{
		{GPUs: 3}, {ShareMilli: 300}, {MIG: []MIGRequest{{"1g.12gb", 2}}}, {GPUs: 1, ShareMilli: 700}, {MIG: []MIGRequest{{"3g.47gb", 2}}},
	}
	var first []Assignment
	for run := 0; run < 5; run++ {
		s := NewNodeState(topo)
		var got []Assignment
		for _, r := range reqs {
			a, _, err := s.Allocate(r)
			if err != nil {
				t.Fatal(err)
			}
			mustAdd(t, s, a)
			got = append(got, a)
		}
		if run == 0 {
			first = got
		} else if !reflect.DeepEqual(got, first) {
			t.Fatalf("run %d differs:\n%+v\n%+v", run, got, first)
		}
	}
}

func TestFitErrorReasons(t *testing.T) {
	tests := []struct {
		err        FitError
		msg, cause string
	}{
		{InsufficientGPUs{Want: 4, Free: 2}, "want 4 whole GPUs, 2 free", "lack 4 free GPUs"},
		{InsufficientGPUs{Want: 1, Free: 0}, "want 1 whole GPUs, 0 free", "lack 1 free GPU"},
		{NoLocalDomain{Want: 4}, "no 4 free GPUs in one NVLink domain or NUMA node", "lack 4 GPUs in one NVLink domain or NUMA node"},
		{NoMIGSlot{Profile: "3g.40gb", Want: 1}, "want 1 MIG 3g.40gb instances, not enough free or creatable", "lack 1 free MIG 3g.40gb slot"},
		{NoMIGSlot{Profile: "1g.10gb", Want: 3}, "want 3 MIG 1g.10gb instances, not enough free or creatable", "lack 3 free MIG 1g.10gb slots"},
		{NoShareRoom{Milli: 250}, "no GPU has 250m free for a share", "no GPU with 250m free"},
		{UnknownProfile{Profile: "3g.20gb"}, `MIG profile "3g.20gb" is not offered by any GPU on the node`, "MIG profile 3g.20gb not offered"},
		{InvalidRequest{Field: "gpus", Value: "-1"}, "invalid GPU request: gpus = -1", "invalid GPU request"},
	}
	for _, tt := range tests {
		if tt.err.Error() != tt.msg || tt.err.Reason() != tt.cause {
			t.Errorf("%#v: Error() = %q, Reason() = %q; want %q, %q", tt.err, tt.err.Error(), tt.err.Reason(), tt.msg, tt.cause)
		}
	}
}
