package gang

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestAddPodIsIdempotent(t *testing.T) {
	m := NewManager(testConfig)
	addGroup(m, "g", 2, 1, 0, 0)
	for range 3 {
		addMembers(m, "g", 0, 1, 0)
	}
	if d := m.PreEnqueue("g-0", t0); d.Reason != "1 of 2 pods of pod group team-a/g exist" {
		t.Errorf("replayed adds counted twice: %+v", d)
	}
	m.DeletePod("g-0")
	m.DeletePod("g-0")
	if got := m.Members(key("g")); len(got) != 0 {
		t.Errorf("Members after delete = %v", got)
	}
}

// TestRebuild replays the API objects of a running cluster into a fresh
// Manager, in an arbitrary order, and checks it reaches the same view.
func TestRebuild(t *testing.T) {
	groups := []Group{
		{Key: key("ran"), MinMember: 2, Created: t0},
		{Key: key("waits"), MinMember: 3, Created: t0},
	}
	pods := []PodRef{
		{UID: "ran-0", Name: "ran-0", Group: key("ran"), Node: "n1", Phase: PodRunning},
		{UID: "ran-1", Name: "ran-1", Group: key("ran"), Node: "n2", Phase: PodRunning},
		{UID: "waits-0", Name: "waits-0", Group: key("waits"), Phase: PodPending},
		{UID: "waits-1", Name: "waits-1", Group: key("waits"), Phase: PodPending},
		{UID: "waits-2", Name: "waits-2", Group: key("waits"), Phase: PodPending},
		{UID: "plain", Name: "plain", Node: "n1", Phase: PodRunning},
	}
	view := func(m *Manager) string {
		var s string
		for _, g := range groups {
			st, _ := m.Status(g.Key, t0)
			s += fmt.Sprintf("%s %+v %v\n", g.Key, st, m.PreEnqueue(string(g.Key.Name())+"-0", t0))
		}
		return s
	}
	a := NewManager(testConfig)
	for _, g := range groups {
		a.SetGroup(g)
	}
	for _, p := range pods {
		a.AddPod(p)
	}
	b := NewManager(testConfig)
	for i := len(pods) - 1; i >= 0; i-- { // pods before their groups, reversed
		b.AddPod(pods[i])
		b.UpdatePod(pods[i])
	}
	for _, g := range groups {
		b.SetGroup(g)
	}
	if va, vb := view(a), view(b); va != vb {
		t.Errorf("rebuilt view differs:\n%s\nvs\n%s", va, vb)
	}
}

func TestPodChangesGroup(t *testing.T) {
	m := NewManager(testConfig)
	addGroup(m, "a", 2, 2, 0, 0)
	addGroup(m, "b", 2, 1, 0, 0)
	mustAssemble(t, m, "a-0", t0, true)
	mustWait(t, m, "a-0", "n1", t0)
	m.UpdatePod(PodRef{UID: "a-0", Name: "a-0", Group: key("b")})
	if got, _ := m.GangOf("a-0"); got != key("b") {
		t.Errorf("GangOf = %q, want team-a/b", got)
	}
	if s, _ := m.Status(key("a"), t0); s.Waiting != 0 || s.Pods != 1 {
		t.Errorf("old group Status = %+v, want the pod and its reservation gone", s)
	}
	if s, _ := m.Status(key("b"), t0); s.Pods != 2 || s.Waiting != 0 {
		t.Errorf("new group Status = %+v, want 2 pods, none waiting", s)
	}
	if _, ok := m.GangOf("nope"); ok {
		t.Error("GangOf(unknown) reported ok")
	}
}

func TestPending(t *testing.T) {
	m := NewManager(testConfig)
	addGroup(m, "g", 4, 6, 0, 0)
	bind(t, m, "n1", "g-0")
	m.UpdatePod(PodRef{UID: "g-5", Name: "g-5", Group: key("g"), Created: at(5 * time.Second), Phase: PodFailed})
	mustAssemble(t, m, "g-1", t0, true)
	mustWait(t, m, "g-1", "n1", t0)

	pods, need := m.Pending(key("g"))
	var uids []string
	for _, p := range pods {
		uids = append(uids, p.UID)
	}
	// g-0 is bound, g-1 reserved, g-5 failed: 2 more of g-2..g-4 needed.
	if want := []string{"g-2", "g-3", "g-4"}; !slices.Equal(uids, want) || need != 2 {
		t.Errorf("Pending() = %v, %d; want %v, 2", uids, need, want)
	}
	if pods, need := m.Pending(key("nope")); pods != nil || need != 0 {
		t.Errorf("Pending(unknown) = %v, %d", pods, need)
	}
}

// TestConcurrentUse exercises every entry point from several goroutines;
// run with -race it checks that the Manager is safe for concurrent use.
func TestConcurrentUse(t *testing.T) {
	m := NewManager(testConfig)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			name := fmt.Sprintf("w%d", w)
			for i := range 50 {
				now := at(time.Duration(i) * time.Second)
				uids := addGroup(m, name, 2, 2, int32(w), 0)
				m.PreEnqueue(uids[0], now)
				m.Less(PodRef{UID: uids[0], Group: key(name)}, PodRef{UID: uids[1], Group: key(name)})
				if a := m.TryAssemble(uids[0], now); a.OK {
					m.Permit(uids[0], "n1", now)
					m.Permit(uids[1], "n1", now)
				}
				m.Expire(now)
				m.Unreserve(uids[1], now)
				m.Status(key(name), now)
				m.Stats(now)
				m.Blocked()
				m.ExpandVictims([]PodRef{{UID: uids[0]}})
				m.DeletePod(uids[0])
				m.DeletePod(uids[1])
				m.DeleteGroup(key(name))
			}
		})
	}
	wg.Wait()
	if len(m.groups) != 0 || len(m.pods) != 0 || m.holder != "" {
		t.Errorf("state left behind: %d groups, %d pods, holder %q", len(m.groups), len(m.pods), m.holder)
	}
}
