package gang

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTryAssemble(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, m *Manager)
		uid   string
		want  Assembly
		// holder is the slot holder expected after the call.
		holder GroupKey
	}{
		{
			name:  "pod without a group needs no slot",
			setup: func(t *testing.T, m *Manager) { m.AddPod(PodRef{UID: "plain"}) },
			uid:   "plain",
			want:  Assembly{OK: true},
		},
		{
			name:  "unknown pod",
			setup: func(t *testing.T, m *Manager) {},
			uid:   "ghost",
			want:  Assembly{Reason: "pod ghost is not known to the gang manager yet"},
		},
		{
			name:  "group does not exist",
			setup: func(t *testing.T, m *Manager) { addMembers(m, "a", 0, 2, 0) },
			uid:   "a-0",
			want:  Assembly{Reason: "pod group team-a/a does not exist"},
		},
		{
			name:  "too few pods",
			setup: func(t *testing.T, m *Manager) { addGroup(m, "a", 3, 2, 0, 0) },
			uid:   "a-0",
			want:  Assembly{Reason: "2 of 3 pods of pod group team-a/a exist"},
		},
		{
			name:   "free slot is granted and the assembly starts",
			setup:  func(t *testing.T, m *Manager) { addGroup(m, "a", 2, 2, 0, 0) },
			uid:    "a-0",
			want:   Assembly{OK: true, Started: true},
			holder: key("a"),
		},
		{
			name: "the holder's next member continues",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "a", 2, 2, 0, 0)
				mustAssemble(t, m, "a-0", t0, true)
			},
			uid:    "a-1",
			want:   Assembly{OK: true},
			holder: key("a"),
		},
		{
			name: "another group waits, holding nothing",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "a", 2, 2, 0, 0)
				addGroup(m, "b", 2, 2, 0, 0)
				mustAssemble(t, m, "a-0", t0, true)
			},
			uid:    "b-0",
			want:   Assembly{Reason: "waiting for pod group team-a/a to finish assembling", Busy: true},
			holder: key("a"),
		},
		{
			name: "a holder past its deadline still holds the slot until Expire",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "a", 2, 2, 0, -time.Hour)
				addGroup(m, "b", 2, 2, 0, 0)
				mustAssemble(t, m, "a-0", at(-time.Hour), true)
			},
			uid:    "b-0",
			want:   Assembly{Reason: "waiting for pod group team-a/a to finish assembling", Busy: true},
			holder: key("a"),
		},
		{
			name: "group of one needs no slot",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "a", 2, 2, 0, 0)
				mustAssemble(t, m, "a-0", t0, true)
				addGroup(m, "solo", 1, 1, 0, 0)
			},
			uid:    "solo-0",
			want:   Assembly{OK: true},
			holder: key("a"),
		},
		{
			name: "extra member of a placed group needs no slot",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "b", 2, 3, 0, 0)
				bind(t, m, "n1", "b-0", "b-1")
				addGroup(m, "a", 2, 2, 0, 0)
				mustAssemble(t, m, "a-0", t0, true)
			},
			uid:    "b-2",
			want:   Assembly{OK: true},
			holder: key("a"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager(testConfig)
			tt.setup(t, m)
			if got := m.TryAssemble(tt.uid, t0); got != tt.want {
				t.Errorf("TryAssemble(%s) = %+v, want %+v", tt.uid, got, tt.want)
			}
			if got, _, _ := m.Holder(); got != tt.holder {
				t.Errorf("holder = %q, want %q", got, tt.holder)
			}
		})
	}
}

func TestPermitAssemblesGroup(t *testing.T) {
	m := NewManager(testConfig)
	addGroup(m, "ddp", 3, 4, 0, 0)

	mustAssemble(t, m, "ddp-0", t0, true)
	r := mustWait(t, m, "ddp-0", "n1", at(time.Second))
	if r.Wait != 9*time.Second {
		t.Errorf("first Wait = %v, want the 9s left until the deadline", r.Wait)
	}
	if want := "1 of 3 members of pod group team-a/ddp have a place; waiting for the rest"; r.Reason != want {
		t.Errorf("Reason = %q, want %q", r.Reason, want)
	}
	mustAssemble(t, m, "ddp-1", at(2*time.Second), false)
	if r := mustWait(t, m, "ddp-1", "n1", at(2*time.Second)); r.Wait != 8*time.Second {
		t.Errorf("second Wait = %v, want 8s", r.Wait)
	}
	// Permit is idempotent by UID: a repeated call does not count twice.
	mustWait(t, m, "ddp-1", "n1", at(2*time.Second))
	if s, _ := m.Status(key("ddp"), at(2*time.Second)); s.Phase != PhaseScheduling || s.Waiting != 2 {
		t.Errorf("Status while assembling = %+v, want Scheduling with 2 waiting", s)
	}

	mustAssemble(t, m, "ddp-2", at(3*time.Second), false)
	r = m.Permit("ddp-2", "n2", at(3*time.Second))
	want := PermitResult{Allow: true, AllowUIDs: []string{"ddp-0", "ddp-1"}, Assembled: true, TimeToSchedule: 3 * time.Second}
	if !r.Allow || !equalStrings(r.AllowUIDs, want.AllowUIDs) || !r.Assembled || r.TimeToSchedule != want.TimeToSchedule {
		t.Fatalf("completing Permit = %+v, want %+v", r, want)
	}
	if _, _, held := m.Holder(); held {
		t.Error("slot still held after the group assembled")
	}
	if s, _ := m.Status(key("ddp"), at(3*time.Second)); s.Phase != PhaseScheduled || s.Scheduled != 3 || s.Waiting != 0 {
		t.Errorf("Status after assembly = %+v, want Scheduled with 3 scheduled", s)
	}

	// The fourth pod is an extra: no slot, allowed at once.
	if a := m.TryAssemble("ddp-3", at(4*time.Second)); !a.OK || a.Started {
		t.Errorf("TryAssemble(extra) = %+v, want OK without a slot", a)
	}
	if r := m.Permit("ddp-3", "n2", at(4*time.Second)); !r.Allow || r.Assembled || len(r.AllowUIDs) != 0 {
		t.Errorf("Permit(extra) = %+v, want a plain Allow", r)
	}
	st := m.Stats(at(4 * time.Second))
	if st.Assembled != 1 || !slices.Equal(st.RecentTimeToSchedule, []time.Duration{3 * time.Second}) {
		t.Errorf("Stats = %v %v, want 1 assembly in 3s", st, st.RecentTimeToSchedule)
	}
}

func TestPermitRejectsWithoutSlot(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, m *Manager)
		uid   string
		now   time.Time
		want  PermitResult
	}{
		{
			name:  "unknown pod",
			setup: func(t *testing.T, m *Manager) {},
			uid:   "ghost",
			want:  PermitResult{Reason: "pod ghost is not known to the gang manager yet"},
		},
		{
			name:  "pod without a group is allowed",
			setup: func(t *testing.T, m *Manager) { m.AddPod(PodRef{UID: "plain"}) },
			uid:   "plain",
			want:  PermitResult{Allow: true},
		},
		{
			name:  "group deleted meanwhile",
			setup: func(t *testing.T, m *Manager) { addMembers(m, "a", 0, 2, 0) },
			uid:   "a-0",
			want:  PermitResult{Reason: "pod group team-a/a does not exist"},
		},
		{
			name:  "group does not hold the slot",
			setup: func(t *testing.T, m *Manager) { addGroup(m, "a", 2, 2, 0, 0) },
			uid:   "a-0",
			want:  PermitResult{Reason: "pod group team-a/a is not assembling: its assembly timed out or was aborted"},
		},
		{
			name: "deadline passed: this pod and the waiting ones are rejected",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "a", 3, 3, 0, 0)
				mustAssemble(t, m, "a-0", t0, true)
				mustWait(t, m, "a-0", "n1", t0)
				mustWait(t, m, "a-1", "n1", t0)
			},
			uid:  "a-2",
			now:  at(10 * time.Second),
			want: PermitResult{RejectUIDs: []string{"a-0", "a-1"}, Reason: "pod group team-a/a did not assemble within 10s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager(testConfig)
			tt.setup(t, m)
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			got := m.Permit(tt.uid, "n1", now)
			if got.Allow != tt.want.Allow || got.Wait != tt.want.Wait || got.Reason != tt.want.Reason || !equalStrings(got.RejectUIDs, tt.want.RejectUIDs) {
				t.Errorf("Permit(%s) = %+v, want %+v", tt.uid, got, tt.want)
			}
		})
	}
}

// TestTimeoutBacksOffExponentially is the timeout scenario: a group whose
// last member never finds a place holds the slot until its deadline, then
// releases every reservation and backs off for 1s, 2s, 4s, 8s, 8s...
func TestTimeoutBacksOffExponentially(t *testing.T) {
	m := NewManager(testConfig)
	addGroup(m, "ddp", 2, 2, 0, 0)
	addGroup(m, "other", 2, 2, 0, 0)

	now := t0
	wantBackoff := []time.Duration{1, 2, 4, 8, 8, 8}
	for i, b := range wantBackoff {
		b *= time.Second
		mustAssemble(t, m, "ddp-0", now, true)
		mustWait(t, m, "ddp-0", "n1", now)
		if got := m.TryAssemble("other-0", now); got.OK {
			t.Fatalf("attempt %d: another group got past PreFilter while ddp assembles", i)
		}
		if got := m.Expire(now.Add(9 * time.Second)); got != nil {
			t.Fatalf("attempt %d: Expire before the deadline = %v, want nothing", i, got)
		}
		deadline := now.Add(10 * time.Second)
		if got := m.Expire(deadline); !equalStrings(got, []string{"ddp-0"}) {
			t.Fatalf("attempt %d: Expire at the deadline = %v, want [ddp-0]", i, got)
		}
		// The framework then calls Unreserve for the rejected pod: a no-op.
		if got := m.Unreserve("ddp-0", deadline); got != nil {
			t.Fatalf("attempt %d: Unreserve after Expire = %v, want nothing", i, got)
		}
		if _, _, held := m.Holder(); held {
			t.Fatalf("attempt %d: slot still held after Expire", i)
		}
		if s, _ := m.Status(key("ddp"), deadline); s.Waiting != 0 || s.Scheduled != 0 || !s.BackoffUntil.Equal(deadline.Add(b)) {
			t.Fatalf("attempt %d: Status = %+v, want nothing held and back-off until +%v", i, s, b)
		}
		d := m.PreEnqueue("ddp-1", deadline)
		if d.Allow || d.RetryAfter != b {
			t.Fatalf("attempt %d: PreEnqueue = %+v, want back-off of %v", i, d, b)
		}
		if d := m.PreEnqueue("ddp-1", deadline.Add(b)); !d.Allow {
			t.Fatalf("attempt %d: PreEnqueue after the back-off = %+v", i, d)
		}
		// Meanwhile the other group may assemble.
		mustAssemble(t, m, "other-0", deadline, true)
		m.Reject(key("other"), deadline, "test")
		now = deadline.Add(b)
	}
	if st := m.Stats(now); st.TimedOut != int64(len(wantBackoff)) {
		t.Errorf("TimedOut = %d, want %d", st.TimedOut, len(wantBackoff))
	}
	if s, _ := m.Status(key("ddp"), now); s.Message != "pod group team-a/ddp did not assemble within 10s" {
		t.Errorf("Message = %q", s.Message)
	}
}

func TestUnreserveReleasesGroup(t *testing.T) {
	tests := []struct {
		name string
		// failing is the member that fails after Reserve.
		failing string
		want    []string
	}{
		{name: "a member failing before Permit releases the waiting ones", failing: "g-2", want: []string{"g-0", "g-1"}},
		{name: "a waiting member rejected releases the others", failing: "g-1", want: []string{"g-0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager(testConfig)
			addGroup(m, "g", 4, 4, 0, 0)
			mustAssemble(t, m, "g-0", t0, true)
			mustWait(t, m, "g-0", "n1", t0)
			mustWait(t, m, "g-1", "n1", t0)

			now := at(time.Second)
			if got := m.Unreserve(tt.failing, now); !equalStrings(got, tt.want) {
				t.Fatalf("Unreserve(%s) = %v, want %v", tt.failing, got, tt.want)
			}
			for _, uid := range tt.want {
				if got := m.Unreserve(uid, now); got != nil {
					t.Errorf("Unreserve(%s) of a released member = %v, want nothing", uid, got)
				}
			}
			if _, _, held := m.Holder(); held {
				t.Error("slot still held")
			}
			s, _ := m.Status(key("g"), now)
			if s.Waiting != 0 || !s.BackoffUntil.Equal(now.Add(time.Second)) {
				t.Errorf("Status = %+v, want nothing waiting and a 1s back-off", s)
			}
			if st := m.Stats(now); st.Unreserved != 1 || st.TimedOut != 0 {
				t.Errorf("Stats = %v, want exactly one unreserved assembly", st)
			}
		})
	}
}

func TestReject(t *testing.T) {
	m := NewManager(testConfig)
	addGroup(m, "a", 2, 2, 0, 0)
	addGroup(m, "b", 2, 2, 0, 0)
	mustAssemble(t, m, "a-0", t0, true)

	// b does not hold the slot: its members only wait for their turn.
	if got := m.Reject(key("b"), t0, "no node"); got != nil {
		t.Errorf("Reject(non-holder) = %v", got)
	}
	if s, _ := m.Status(key("b"), t0); !s.BackoffUntil.IsZero() {
		t.Errorf("non-holder backs off: %+v", s)
	}

	// Early rejection: nothing reserved yet, so nothing to release.
	if got := m.Reject(key("a"), t0, "pod group team-a/a does not fit: 2 members need 16 GPUs"); got != nil {
		t.Errorf("Reject(early) = %v, want nothing to release", got)
	}
	s, _ := m.Status(key("a"), t0)
	if s.Message != "pod group team-a/a does not fit: 2 members need 16 GPUs" || !s.BackoffUntil.Equal(at(time.Second)) || s.Phase != PhasePreScheduling {
		t.Errorf("Status after Reject = %+v", s)
	}
	mustAssemble(t, m, "b-0", t0, true)
	mustWait(t, m, "b-0", "n1", t0)
	// Rejection at PostFilter: the waiting member is released.
	if got := m.Reject(key("b"), t0, "no node for b-1"); !equalStrings(got, []string{"b-0"}) {
		t.Errorf("Reject(PostFilter) = %v, want [b-0]", got)
	}
	if st := m.Stats(t0); st.Rejected != 2 || st.BackingOff != 2 {
		t.Errorf("Stats = %v, want 2 rejections and 2 groups backing off", st)
	}
}

// TestHigherPriorityLaterGroupFirst checks that a higher-priority group that
// arrives later is assembled before an older lower-priority one that has
// not started assembling, and that a group that has started is not
// preempted mid-assembly.
func TestHigherPriorityLaterGroupFirst(t *testing.T) {
	m := NewManager(testConfig)
	addGroup(m, "old", 3, 3, 0, 0)
	addGroup(m, "urgent", 3, 3, 10, time.Hour)
	addGroup(m, "older", 2, 2, 0, -time.Hour)

	var queue []PodRef
	for _, g := range []string{"old", "urgent", "older"} {
		queue = append(queue, m.Members(key(g))...)
	}
	slices.SortFunc(queue, func(a, b PodRef) int {
		if m.Less(a, b) {
			return -1
		}
		if m.Less(b, a) {
			return 1
		}
		return 0
	})
	var order []string
	for _, p := range queue {
		order = append(order, p.UID)
	}
	wantOrder := []string{"urgent-0", "urgent-1", "urgent-2", "older-0", "older-1", "old-0", "old-1", "old-2"}
	if !equalStrings(order, wantOrder) {
		t.Fatalf("queue order = %v, want %v", order, wantOrder)
	}

	// Schedule in queue order: each group assembles in turn.
	var assembled []GroupKey
	for _, p := range queue {
		if a := m.TryAssemble(p.UID, t0); !a.OK {
			t.Fatalf("TryAssemble(%s) = %+v", p.UID, a)
		}
		if r := m.Permit(p.UID, "n1", t0); r.Assembled {
			assembled = append(assembled, p.Group)
		}
	}
	if want := []GroupKey{key("urgent"), key("older"), key("old")}; !slices.Equal(assembled, want) {
		t.Errorf("assembly order = %v, want %v", assembled, want)
	}

	// A low-priority group that holds the slot keeps it against a later
	// high-priority one, until it completes or its deadline passes.
	m = NewManager(testConfig)
	addGroup(m, "low", 2, 2, 0, 0)
	addGroup(m, "high", 2, 2, 100, time.Hour)
	mustAssemble(t, m, "low-0", t0, true)
	mustWait(t, m, "low-0", "n1", t0)
	if a := m.TryAssemble("high-0", at(time.Second)); a.OK {
		t.Fatalf("high-priority group preempted the assembling one: %+v", a)
	}
	if got := m.Blocked(); !slices.Equal(got, []GroupKey{key("high")}) {
		t.Errorf("Blocked() = %v, want [high]", got)
	}
	if got := m.Expire(at(10 * time.Second)); !equalStrings(got, []string{"low-0"}) {
		t.Fatalf("Expire = %v", got)
	}
	mustAssemble(t, m, "high-0", at(10*time.Second), true)
	if got := m.Blocked(); len(got) != 0 {
		t.Errorf("Blocked() after high got the slot = %v, want none", got)
	}
}

func TestDeleteDuringAssembly(t *testing.T) {
	tests := []struct {
		name   string
		delete func(m *Manager) []string
		want   []string
		// holds reports whether the group should still hold the slot.
		holds bool
	}{
		{
			name:   "deleting an extra pod keeps the assembly going",
			delete: func(m *Manager) []string { return m.DeletePod("g-3") },
			holds:  true,
		},
		{
			name: "deleting a pod below MinMember aborts the assembly",
			delete: func(m *Manager) []string {
				m.DeletePod("g-3")
				return m.DeletePod("g-2")
			},
			want: []string{"g-0", "g-1"},
		},
		{
			name: "deleting a waiting pod below MinMember releases the others",
			delete: func(m *Manager) []string {
				m.DeletePod("g-3")
				return m.DeletePod("g-0")
			},
			want: []string{"g-1"},
		},
		{
			name:   "deleting the group aborts the assembly",
			delete: func(m *Manager) []string { return m.DeleteGroup(key("g")) },
			want:   []string{"g-0", "g-1"},
		},
		{
			name:   "deleting an unknown pod does nothing",
			delete: func(m *Manager) []string { return m.DeletePod("ghost") },
			holds:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager(testConfig)
			addGroup(m, "g", 3, 4, 0, 0)
			mustAssemble(t, m, "g-0", t0, true)
			mustWait(t, m, "g-0", "n1", t0)
			mustWait(t, m, "g-1", "n1", t0)
			if got := tt.delete(m); !equalStrings(got, tt.want) {
				t.Errorf("delete = %v, want %v", got, tt.want)
			}
			if _, _, held := m.Holder(); held != tt.holds {
				t.Errorf("slot held = %v, want %v", held, tt.holds)
			}
			if s, _ := m.Status(key("g"), t0); !s.BackoffUntil.IsZero() {
				t.Errorf("deletion started a back-off: %+v", s)
			}
			if st := m.Stats(t0); (st.Aborted == 1) == tt.holds {
				t.Errorf("Stats = %v, want %d aborted", st, map[bool]int{true: 0, false: 1}[tt.holds])
			}
		})
	}
}

// TestBindingFailureAfterAllow covers the one window in which a partial
// gang exists: a binding fails after Permit allowed the whole group.
func TestBindingFailureAfterAllow(t *testing.T) {
	m := NewManager(testConfig)
	addGroup(m, "g", 2, 2, 0, 0)
	mustAssemble(t, m, "g-0", t0, true)
	mustWait(t, m, "g-0", "n1", t0)
	if r := m.Permit("g-1", "n2", t0); !r.Allow {
		t.Fatalf("Permit = %+v", r)
	}
	bind(t, m, "n1", "g-0")
	if got := m.Unreserve("g-1", at(time.Second)); got != nil {
		t.Errorf("Unreserve after Allow = %v, want nothing to reject", got)
	}
	s, _ := m.Status(key("g"), at(time.Second))
	if s.Scheduled != 1 || !s.BackoffUntil.IsZero() {
		t.Errorf("Status = %+v, want 1 scheduled and no back-off", s)
	}
	// The failed member assembles again, its bound sibling counted.
	if d := m.PreEnqueue("g-1", at(time.Second)); !d.Allow {
		t.Fatalf("PreEnqueue = %+v", d)
	}
	mustAssemble(t, m, "g-1", at(time.Second), true)
	if r := m.Permit("g-1", "n1", at(2*time.Second)); !r.Allow || !r.Assembled || len(r.AllowUIDs) != 0 {
		t.Errorf("Permit = %+v, want Allow completing the group", r)
	}
}

func TestBlockedOrder(t *testing.T) {
	m := NewManager(testConfig)
	addGroup(m, "holder", 2, 2, 0, 0)
	addGroup(m, "b", 2, 2, 0, time.Minute)
	addGroup(m, "a", 2, 2, 0, time.Minute)
	addGroup(m, "high", 2, 2, 5, time.Hour)
	addGroup(m, "oldest", 2, 2, 0, -time.Hour)
	mustAssemble(t, m, "holder-0", t0, true)
	for _, uid := range []string{"b-0", "a-0", "high-0", "b-1"} {
		if a := m.TryAssemble(uid, t0); a.OK {
			t.Fatalf("TryAssemble(%s) = %+v", uid, a)
		}
	}
	// A group gated at PreEnqueue is listed as well.
	if d := m.PreEnqueue("oldest-1", t0); d.Allow {
		t.Fatalf("PreEnqueue(oldest-1) = %+v", d)
	}
	want := []GroupKey{key("high"), key("oldest"), key("a"), key("b")}
	if got := m.Blocked(); !slices.Equal(got, want) {
		t.Errorf("Blocked() = %v, want %v", got, want)
	}
}

// TestDefer: a group deferred because the cluster is busy releases its
// waiting members and the slot, counts no failure, and waits for room: it
// is held back until RoomChanged (a pod left, a node came), which names it
// to be woken, and then tries at once; without any reported change it
// retries after DeferredRecheck, however often it is deferred.
func TestDefer(t *testing.T) {
	m := NewManager(Config{DefaultTimeout: 30 * time.Second, BackoffInitial: time.Second, BackoffMax: time.Minute})
	uids := addGroup(m, "busy", 2, 2, 0, 0)
	for round := 0; round < 5; round++ {
		now := at(time.Duration(round) * 10 * time.Minute)
		mustAssemble(t, m, uids[0], now, true)
		mustWait(t, m, uids[0], "node-a", now)
		got := m.Defer(key("busy"), now, "busy")
		if !equalStrings(got, []string{uids[0]}) {
			t.Fatalf("round %d: Defer returned %v, want the waiting member", round, got)
		}
		if _, _, held := m.Holder(); held {
			t.Fatalf("round %d: slot still held after Defer", round)
		}
		if d := m.PreEnqueue(uids[1], now.Add(time.Second)); d.Allow || d.Reason != "busy" || d.RetryAfter != DeferredRecheck-time.Second {
			t.Fatalf("round %d: deferred group admitted before room changed: %+v", round, d)
		}
		if round%2 == 0 {
			if woken := m.RoomChanged(); !slices.Equal(woken, []GroupKey{key("busy")}) {
				t.Fatalf("round %d: RoomChanged woke %v, want the deferred group", round, woken)
			}
			if d := m.PreEnqueue(uids[1], now.Add(time.Second)); !d.Allow {
				t.Fatalf("round %d: deferred group still held after room changed: %s", round, d.Reason)
			}
		} else if d := m.PreEnqueue(uids[1], now.Add(DeferredRecheck)); !d.Allow {
			t.Fatalf("round %d: deferred group still held after DeferredRecheck: %s", round, d.Reason)
		}
	}
	if s := m.Stats(at(time.Hour)); s.Deferred != 5 || s.Rejected != 0 {
		t.Errorf("stats %+v, want 5 deferred, 0 rejected", s)
	}
	// A group that assembled is no longer woken.
	mustAssemble(t, m, uids[0], at(2*time.Hour), true)
	mustAllowOrWait(t, m, uids[0], "node-a", at(2*time.Hour))
	mustAllowOrWait(t, m, uids[1], "node-a", at(2*time.Hour))
	if woken := m.RoomChanged(); len(woken) != 0 {
		t.Errorf("RoomChanged woke %v after the group assembled", woken)
	}
}

// TestNoBackoff: without a group back-off, a group whose assembly was
// rejected or deferred may start again at once.
func TestNoBackoff(t *testing.T) {
	m := NewManager(Config{DefaultTimeout: 30 * time.Second, NoBackoff: true})
	uids := addGroup(m, "eager", 2, 2, 0, 0)
	now := at(0)
	mustAssemble(t, m, uids[0], now, true)
	m.Reject(key("eager"), now, "no room")
	if d := m.PreEnqueue(uids[1], now); !d.Allow {
		t.Fatalf("rejected group held back without a back-off: %s", d.Reason)
	}
	// Deferred for lack of room it still waits for room to change.
	mustAssemble(t, m, uids[0], now, true)
	m.Defer(key("eager"), now, "busy")
	m.RoomChanged()
	if d := m.PreEnqueue(uids[1], now); !d.Allow {
		t.Fatalf("deferred group held back after room changed: %s", d.Reason)
	}
}

// TestStarvation: a big old group waits for room (deferred again and again)
// while small younger groups keep assembling in the room that frees up.
// Once it has waited StarvationAfter, younger and lower-priority groups no
// longer start (at PreEnqueue and at TryAssemble) and say whom they wait
// behind; a higher-priority group still does; when the big group
// assembles, the others go on.
func TestStarvation(t *testing.T) {
	cfg := testConfig
	cfg.StarvationAfter = 10 * time.Second
	m := NewManager(cfg)
	big := addGroup(m, "big", 8, 8, 0, 0)
	small1 := addGroup(m, "small1", 2, 2, 0, time.Minute)
	small2 := addGroup(m, "small2", 2, 2, 0, 2*time.Minute)
	urgent := addGroup(m, "urgent", 2, 2, 100, 3*time.Minute)
	now := at(5 * time.Minute)

	// The big group finds no room and is deferred.
	mustAssemble(t, m, big[0], now, true)
	m.Defer(key("big"), now, "no room")

	// Within StarvationAfter, a small group still assembles.
	mustAssemble(t, m, small1[0], now.Add(2*time.Second), true)
	for _, uid := range small1 {
		mustAllowOrWait(t, m, uid, "node-a", now.Add(2*time.Second))
	}

	// Room changes; the big group tries again and is deferred again; its
	// wait began at the first deferral.
	m.RoomChanged()
	later := now.Add(11 * time.Second)
	mustAssemble(t, m, big[0], later, true)
	m.Defer(key("big"), later, "no room")
	for _, check := range []struct {
		name   string
		allow  bool
		reason string
	}{
		{"PreEnqueue", m.PreEnqueue(small2[0], later).Allow, m.PreEnqueue(small2[0], later).Reason},
		{"TryAssemble", m.TryAssemble(small2[0], later).OK, m.TryAssemble(small2[0], later).Reason},
	} {
		if check.allow || !strings.Contains(check.reason, "waiting behind pod group team-a/big") {
			t.Errorf("%s for a younger group while big starves: allow=%v reason %q", check.name, check.allow, check.reason)
		}
	}
	if !slices.Contains(m.Blocked(), key("small2")) {
		t.Errorf("small2 is not listed as blocked: %v", m.Blocked())
	}
	// A higher-priority group is not held back.
	mustAssemble(t, m, urgent[0], later, true)
	for _, uid := range urgent {
		mustAllowOrWait(t, m, uid, "node-b", later)
	}

	// Room changes again; the big group assembles; then younger groups
	// start again.
	m.RoomChanged()
	done := later.Add(2 * time.Second)
	mustAssemble(t, m, big[0], done, true)
	for _, uid := range big {
		mustAllowOrWait(t, m, uid, "node-c", done)
	}
	mustAssemble(t, m, small2[0], done, true)
}

// mustAllowOrWait calls Permit and fails if the pod is rejected.
func mustAllowOrWait(t *testing.T, m *Manager, uid, node string, now time.Time) {
	t.Helper()
	if r := m.Permit(uid, node, now); !r.Allow && r.Wait <= 0 {
		t.Fatalf("Permit(%s) rejected: %s", uid, r.Reason)
	}
}
