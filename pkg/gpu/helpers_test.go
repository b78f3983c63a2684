package gpu

import (
	"strings"
	"testing"
)

// mustAdd adds a to s and fails the test if that is refused.
func mustAdd(t testing.TB, s *NodeState, a Assignment) {
	t.Helper()
	if err := s.Add(a); err != nil {
		t.Fatalf("Add(%+v): %v", a, err)
	}
}

// wantErr checks that err is non-nil and mentions every fragment, or is nil
// when no fragment is given.
func wantErr(t testing.TB, err error, fragments ...string) {
	t.Helper()
	if len(fragments) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("error %q does not mention %q", err, f)
		}
	}
}

// migTopology is a node of n GPUs of product, all in the given MIG mode,
// wired as DefaultTopology wires them.
func migTopology(product string, n int, mode MIGMode) Topology {
	t := DefaultTopology(product, n)
	for i := range t.GPUs {
		t.GPUs[i].MIG = mode
	}
	return t
}

// whole is an assignment of whole GPUs.
func whole(gpus ...int) Assignment {
	return Assignment{GPUs: gpus}
}
