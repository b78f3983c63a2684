package gpu

import (
	"reflect"
	"slices"
	"testing"
)

func TestAssignmentRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Assignment
		want string
	}{
		{name: "empty", in: Assignment{}, want: `{"v":1}`},
		{name: "whole", in: whole(3, 1, 2), want: `{"v":1,"gpus":[1,2,3]}`},
		{
			name: "everything",
			in: Assignment{
				GPUs:   []int{1, 0},
				MIG:    []MIGSlot{{GPU: 4, Profile: "1g.10gb", Start: 6}, {GPU: 3, Profile: "3g.40gb", Start: 4}, {GPU: 3, Profile: "3g.40gb", Start: 0}},
				Shares: []Share{{GPU: 2, Milli: 250}},
				UUIDs:  []string{"GPU-0", "GPU-1", "GPU-2", "GPU-3", "GPU-4"},
			},
			want: `{"v":1,"gpus":[0,1],"uuids":["GPU-0","GPU-1","GPU-2","GPU-3","GPU-4"],"mig":[{"gpu":3,"profile":"3g.40gb","start":0},{"gpu":3,"profile":"3g.40gb","start":4},{"gpu":4,"profile":"1g.10gb","start":6}],"shares":[{"gpu":2,"milli":250}]}`,
		},
		{
			name: "share only",
			in:   Assignment{Shares: []Share{{GPU: 0, Milli: 999}}},
			want: `{"v":1,"shares":[{"gpu":0,"milli":999}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := MarshalAssignment(tt.in)
			if err != nil {
				t.Fatalf("MarshalAssignment: %v", err)
			}
			if s != tt.want {
				t.Errorf("MarshalAssignment = %s\nwant %s", s, tt.want)
			}
			back, err := UnmarshalAssignment(s)
			if err != nil {
				t.Fatalf("UnmarshalAssignment: %v", err)
			}
			if want := tt.in.Normalize(); !reflect.DeepEqual(back, want) {
				t.Errorf("round trip = %+v, want %+v", back, want)
			}
		})
	}
}

func TestMarshalAssignmentDoesNotReorderInput(t *testing.T) {
	a := whole(2, 0)
	if _, err := MarshalAssignment(a); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.GPUs, []int{2, 0}) {
		t.Errorf("input changed to %v", a.GPUs)
	}
}

func TestUnmarshalAssignmentErrors(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{``, []string{AnnotationAssignment, "malformed JSON"}},
		{`{"v":1,"gpus":"0"}`, []string{"malformed JSON", "gpus"}},
		{`{"gpus":[0]}`, []string{`missing version field "v"`}},
		{`{"v":2,"gpus":[0]}`, []string{`unsupported version "v" = 2`, "reads 1"}},
		{`{"v":0}`, []string{`unsupported version "v" = 0`}},
		{`{"v":1,"gpus":[0,-1]}`, []string{"gpus[1]", "negative GPU index -1"}},
		{`{"v":1,"gpus":[1,1]}`, []string{"gpus[1]", "GPU 1 listed twice"}},
		{`{"v":1,"shares":[{"gpu":2,"milli":0}]}`, []string{"shares[0].milli", "0 is out of range 1..999"}},
		{`{"v":1,"shares":[{"gpu":2,"milli":1000}]}`, []string{"shares[0].milli", "1000"}},
		{`{"v":1,"shares":[{"gpu":2,"milli":100},{"gpu":2,"milli":100}]}`, []string{"shares[1].gpu", "GPU 2 listed twice"}},
		{`{"v":1,"gpus":[2],"shares":[{"gpu":2,"milli":100}]}`, []string{"shares[0].gpu", "GPU 2 is used both whole and by shares"}},
		{`{"v":1,"gpus":[2],"mig":[{"gpu":2,"profile":"1g.5gb","start":0}]}`, []string{"mig[0].gpu", "GPU 2 is used both whole and by MIG"}},
		{`{"v":1,"mig":[{"gpu":0,"profile":"3g","start":0}]}`, []string{"mig[0].profile", `"3g"`}},
		{`{"v":1,"mig":[{"gpu":0,"profile":"3g.40gb","start":8}]}`, []string{"mig[0].start", "8 is out of range 0..7"}},
		{`{"v":1,"mig":[{"gpu":0,"profile":"1g.5gb","start":1},{"gpu":0,"profile":"1g.5gb","start":1}]}`, []string{"mig[1].start", "GPU 0 start 1 listed twice"}},
		{`{"v":1,"gpus":[0,1],"uuids":["GPU-a"]}`, []string{"uuids", "1 entries for 2 devices"}},
		{`{"v":1,"gpus":[0],"uuids":[""]}`, []string{"uuids[0]", "empty UUID"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := UnmarshalAssignment(tt.in)
			wantErr(t, err, tt.want...)
		})
	}
	// Unknown fields are tolerated, for optional additions within v1.
	a, err := UnmarshalAssignment(`{"v":1,"gpus":[0],"note":"x"}`)
	if err != nil || !slices.Equal(a.GPUs, []int{0}) {
		t.Errorf("unknown field: got %+v, %v", a, err)
	}
}

func TestMarshalAssignmentRefusesInvalid(t *testing.T) {
	_, err := MarshalAssignment(Assignment{Shares: []Share{{GPU: 1, Milli: 1500}}})
	wantErr(t, err, AnnotationAssignment, "shares[0].milli", "1500")
	_, err = MarshalAssignment(Assignment{MIG: []MIGSlot{{GPU: 1, Profile: "3g.20gb", Start: -1}}})
	wantErr(t, err, "mig[0].start", "-1")
}

func TestAssignmentHelpers(t *testing.T) {
	a := Assignment{
		GPUs:   []int{5},
		MIG:    []MIGSlot{{GPU: 2, Profile: "3g.40gb", Start: 4}, {GPU: 2, Profile: "4g.40gb", Start: 0}},
		Shares: []Share{{GPU: 0, Milli: 300}},
	}
	if got := a.Devices(); !slices.Equal(got, []int{0, 2, 5}) {
		t.Errorf("Devices() = %v", got)
	}
	// 1000 + (3+4)*1000/7 + 300
	if got := a.Milli(); got != 2300 {
		t.Errorf("Milli() = %d, want 2300", got)
	}
	if a.IsZero() || !(Assignment{}).IsZero() {
		t.Errorf("IsZero wrong")
	}

	topo := Topology{GPUs: []GPU{{Index: 0, UUID: "GPU-a"}, {Index: 2, UUID: "GPU-c"}, {Index: 5, UUID: "GPU-f"}}}
	if got := a.WithUUIDs(topo).UUIDs; !slices.Equal(got, []string{"GPU-a", "GPU-c", "GPU-f"}) {
		t.Errorf("WithUUIDs = %v", got)
	}
	topo.GPUs[1].UUID = ""
	if got := a.WithUUIDs(topo).UUIDs; got != nil {
		t.Errorf("WithUUIDs with a missing UUID = %v, want nil", got)
	}
	with := a.WithUUIDs(Topology{GPUs: []GPU{{Index: 0, UUID: "A"}, {Index: 2, UUID: "C"}, {Index: 5, UUID: "F"}}})
	s, err := MarshalAssignment(with)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalAssignment(s)
	if err != nil || !reflect.DeepEqual(back, with.Normalize()) {
		t.Errorf("round trip with UUIDs = %+v, %v", back, err)
	}
}

func TestAssignmentDescribe(t *testing.T) {
	tests := []struct {
		a    Assignment
		want string
	}{
		{Assignment{}, "no GPU"},
		{Assignment{GPUs: []int{3}}, "GPU 3"},
		{Assignment{GPUs: []int{0, 1, 2, 3}}, "GPUs 0,1,2,3"},
		{Assignment{MIG: []MIGSlot{{GPU: 2, Profile: "3g.40gb", Start: 4}}}, "MIG 3g.40gb on GPU 2 (start 4)"},
		{Assignment{Shares: []Share{{GPU: 1, Milli: 250}}}, "250m of GPU 1"},
	}
	for _, tc := range tests {
		if got := tc.a.Describe(); got != tc.want {
			t.Errorf("Describe(%+v) = %q, want %q", tc.a, got, tc.want)
		}
	}
}
