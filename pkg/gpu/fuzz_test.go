package gpu

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzUnmarshalAssignment feeds the assignment annotation's parser what a
// user, a bug or an attacker with pod-patch rights could write: it must
// never panic, and whatever it accepts is valid (no GPU in two lists,
// shares within 1..999m, legal indices) and survives a round trip
// unchanged, since the agent and every scheduler replica rebuild state from
// it.
func FuzzUnmarshalAssignment(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"gpus":[2,3],"uuids":["GPU-a","GPU-b"]}`,
		`{"v":1,"mig":[{"gpu":0,"profile":"3g.40gb","start":4}]}`,
		`{"v":1,"shares":[{"gpu":1,"milli":250}]}`,
		`{"v":1,"gpus":[0],"shares":[{"gpu":0,"milli":1}]}`,
		`{"v":1,"shares":[{"gpu":1,"milli":1000}]}`,
		`{"v":2,"gpus":[0]}`,
		`{"gpus":[-1]}`,
		`{"v":1,"gpus":[0,0]}`,
		`{"v":1,"mig":[{"gpu":0,"profile":"","start":-3}]}`,
		`[]`, `null`, ``, `{"v":1}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := UnmarshalAssignment(s)
		if err != nil {
			if !strings.Contains(err.Error(), "assignment") {
				t.Errorf("error %q does not say it is about the assignment", err)
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted %q, which does not validate: %v", s, err)
		}
		raw, err := MarshalAssignment(a)
		if err != nil {
			t.Fatalf("accepted %q but cannot write it back: %v", s, err)
		}
		b, err := UnmarshalAssignment(raw)
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip of %q: %+v, then %q, then %+v (%v)", s, a, raw, b, err)
		}
		for _, sh := range a.Shares {
			if sh.Milli < 1 || sh.Milli > 999 {
				t.Fatalf("accepted a share of %dm from %q", sh.Milli, s)
			}
		}
	})
}

// FuzzMIGProfileNames: the MIG profile parsers take resource names from
// pods and nodes; they never panic, and a profile they accept has 1 to 7
// compute slices.
func FuzzMIGProfileNames(f *testing.F) {
	for _, seed := range []string{"nvidia.com/mig-3g.40gb", "nvidia.com/mig-1g.10gb+me", "nvidia.com/mig-9g.99gb", "nvidia.com/mig-", "3g.40gb", "0g.0gb", "-1g.5gb", "7g.80gb"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if profile, ok := ParseMIGResource(s); ok && profile == "" {
			t.Errorf("ParseMIGResource(%q) accepted an empty profile", s)
		}
		n, err := MIGSlices(s)
		if err == nil && (n < 1 || n > MIGComputeSlices) {
			t.Errorf("MIGSlices(%q) = %d", s, n)
		}
	})
}
