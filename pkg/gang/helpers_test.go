package gang

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// t0 is the start of every test's clock.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// testConfig is a configuration with round numbers: a 10s assembly
// timeout and a back-off doubling from 1s to at most 8s.
var testConfig = Config{DefaultTimeout: 10 * time.Second, BackoffInitial: time.Second, BackoffMax: 8 * time.Second}

// key is the key of group name in namespace team-a.
func key(name string) GroupKey { return NewGroupKey("team-a", name) }

// addGroup defines group name with the given MinMember and priority,
// created at t0 plus created, and adds n pending members named name-0,
// name-1, ... with UIDs of the same names, created one second apart from
// the group's creation. It returns the UIDs.
func addGroup(m *Manager, name string, minMember, n int, priority int32, created time.Duration) []string {
	m.SetGroup(Group{Key: key(name), MinMember: minMember, Priority: priority, Created: at(created)})
	return addMembers(m, name, 0, n, created)
}

// addMembers adds pending members name-from .. name-(to-1) to group name.
func addMembers(m *Manager, name string, from, to int, created time.Duration) []string {
	var uids []string
	for i := from; i < to; i++ {
		uid := fmt.Sprintf("%s-%d", name, i)
		m.AddPod(PodRef{UID: uid, Name: uid, Group: key(name), Created: at(created + time.Duration(i)*time.Second), Phase: PodPending})
		uids = append(uids, uid)
	}
	return uids
}

// bind records that the pods with the given UIDs were bound to node and
// are running, as the informer would report it.
func bind(t *testing.T, m *Manager, node string, uids ...string) {
	t.Helper()
	for _, uid := range uids {
		found := false
		for _, p := range m.Members(mustGang(t, m, uid)) {
			if p.UID == uid {
				p.Node, p.Phase = node, PodRunning
				m.UpdatePod(p)
				found = true
			}
		}
		if !found {
			t.Fatalf("pod %s not found", uid)
		}
	}
}

func mustGang(t *testing.T, m *Manager, uid string) GroupKey {
	t.Helper()
	g, ok := m.GangOf(uid)
	if !ok {
		t.Fatalf("GangOf(%s): not found", uid)
	}
	return g
}

// mustAssemble calls TryAssemble and fails unless it grants the slot with
// the wanted Started.
func mustAssemble(t *testing.T, m *Manager, uid string, now time.Time, started bool) {
	t.Helper()
	a := m.TryAssemble(uid, now)
	if !a.OK || a.Started != started {
		t.Fatalf("TryAssemble(%s) = %+v, want OK with Started=%v", uid, a, started)
	}
}

// mustWait calls Permit and fails unless the pod is told to wait.
func mustWait(t *testing.T, m *Manager, uid, node string, now time.Time) PermitResult {
	t.Helper()
	r := m.Permit(uid, node, now)
	if r.Allow || r.Wait <= 0 {
		t.Fatalf("Permit(%s) = %+v, want wait", uid, r)
	}
	return r
}

// equalStrings reports whether a and b hold the same strings in the same
// order, treating nil and empty alike.
func equalStrings(a, b []string) bool { return slices.Equal(a, b) }
