package gang

import (
	"testing"
	"time"
)

func TestPreEnqueue(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, m *Manager)
		uid   string
		now   time.Time
		want  Decision
	}{
		{
			name:  "unknown pod is held back",
			setup: func(t *testing.T, m *Manager) {},
			uid:   "ghost",
			want:  Decision{Reason: "pod ghost is not known to the gang manager yet"},
		},
		{
			name:  "pod without a group passes",
			setup: func(t *testing.T, m *Manager) { m.AddPod(PodRef{UID: "plain", Name: "plain"}) },
			uid:   "plain",
			want:  Decision{Allow: true},
		},
		{
			name:  "group does not exist",
			setup: func(t *testing.T, m *Manager) { addMembers(m, "ddp", 0, 4, 0) },
			uid:   "ddp-0",
			want:  Decision{Reason: "pod group team-a/ddp does not exist"},
		},
		{
			name:  "too few pods",
			setup: func(t *testing.T, m *Manager) { addGroup(m, "ddp", 4, 3, 0, 0) },
			uid:   "ddp-0",
			want:  Decision{Reason: "3 of 4 pods of pod group team-a/ddp exist"},
		},
		{
			name: "bound members count",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "ddp", 4, 4, 0, 0)
				// Restarted scheduler: two members were bound before.
				m.UpdatePod(PodRef{UID: "ddp-0", Name: "ddp-0", Group: key("ddp"), Node: "n1", Phase: PodRunning})
				m.UpdatePod(PodRef{UID: "ddp-1", Name: "ddp-1", Group: key("ddp"), Node: "n1", Phase: PodRunning})
			},
			uid:  "ddp-2",
			want: Decision{Allow: true},
		},
		{
			name: "failed members do not count",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "ddp", 4, 4, 0, 0)
				m.UpdatePod(PodRef{UID: "ddp-3", Name: "ddp-3", Group: key("ddp"), Phase: PodFailed})
			},
			uid:  "ddp-0",
			want: Decision{Reason: "3 of 4 pods of pod group team-a/ddp exist"},
		},
		{
			name:  "enough pods",
			setup: func(t *testing.T, m *Manager) { addGroup(m, "ddp", 4, 4, 0, 0) },
			uid:   "ddp-0",
			want:  Decision{Allow: true},
		},
		{
			name: "backing off",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "ddp", 4, 4, 0, 0)
				mustAssemble(t, m, "ddp-0", t0, true)
				m.Reject(key("ddp"), t0, "does not fit") // first failure: 1s
				mustAssemble(t, m, "ddp-0", at(time.Second), true)
				m.Reject(key("ddp"), at(time.Second), "does not fit") // second failure: 2s
			},
			uid:  "ddp-1",
			now:  at(1500 * time.Millisecond),
			want: Decision{Reason: "pod group team-a/ddp is backing off for 1.5s after 2 failed attempts", RetryAfter: 1500 * time.Millisecond},
		},
		{
			name: "back-off over",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "ddp", 4, 4, 0, 0)
				mustAssemble(t, m, "ddp-0", t0, true)
				m.Reject(key("ddp"), t0, "does not fit")
			},
			uid:  "ddp-1",
			now:  at(time.Second),
			want: Decision{Allow: true},
		},
		{
			name: "extra member of a placed group passes even while too few exist",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "ddp", 2, 3, 0, 0)
				bind(t, m, "n1", "ddp-0", "ddp-1")
				m.DeletePod("ddp-0")
				m.UpdatePod(PodRef{UID: "ddp-0b", Name: "ddp-0b", Group: key("ddp"), Node: "n1", Phase: PodSucceeded})
			},
			uid:  "ddp-2",
			want: Decision{Allow: true},
		},
		{
			name: "another group holds the slot",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "ddp", 2, 2, 0, 0)
				addGroup(m, "first", 2, 2, 0, 0)
				mustAssemble(t, m, "first-0", t0, true)
			},
			uid:  "ddp-0",
			want: Decision{Reason: "waiting for pod group team-a/first to finish assembling"},
		},
		{
			name: "the holder's members pass",
			setup: func(t *testing.T, m *Manager) {
				addGroup(m, "ddp", 2, 2, 0, 0)
				mustAssemble(t, m, "ddp-0", t0, true)
			},
			uid:  "ddp-1",
			want: Decision{Allow: true},
		},
		{
			name:  "group of one needs only to exist",
			setup: func(t *testing.T, m *Manager) { addGroup(m, "solo", 1, 1, 0, 0) },
			uid:   "solo-0",
			want:  Decision{Allow: true},
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
			if got := m.PreEnqueue(tt.uid, now); got != tt.want {
				t.Errorf("PreEnqueue(%s) = %+v, want %+v", tt.uid, got, tt.want)
			}
		})
	}
}

func TestLess(t *testing.T) {
	m := NewManager(testConfig)
	m.SetGroup(Group{Key: key("old"), MinMember: 2, Created: at(0)})
	m.SetGroup(Group{Key: key("new"), MinMember: 2, Created: at(time.Hour)})
	m.SetGroup(Group{Key: key("urgent"), MinMember: 2, Priority: 100, Created: at(2 * time.Hour)})
	m.SetGroup(Group{Key: key("twin"), MinMember: 2, Created: at(0)})

	pod := func(uid string, group string, created time.Duration, prio int32) PodRef {
		p := PodRef{UID: uid, Name: uid, Created: at(created), Priority: prio}
		if group != "" {
			p.Group = key(group)
		}
		return p
	}
	tests := []struct {
		name string
		a, b PodRef
		want bool
	}{
		{name: "higher group priority first", a: pod("u", "urgent", 3*time.Hour, 0), b: pod("o", "old", 0, 0), want: true},
		{name: "lower group priority last", a: pod("o", "old", 0, 0), b: pod("u", "urgent", 3*time.Hour, 0), want: false},
		{name: "group priority beats the pod's own", a: pod("o", "old", 0, 1000), b: pod("u", "urgent", 0, 0), want: false},
		{name: "older group first although its pod is newer", a: pod("o", "old", 5*time.Hour, 0), b: pod("n", "new", time.Hour, 0), want: true},
		{name: "same age: group key keeps groups contiguous", a: pod("o2", "old", 9*time.Hour, 0), b: pod("t", "twin", 0, 0), want: true},
		{name: "same group: older pod first", a: pod("o1", "old", time.Minute, 0), b: pod("o0", "old", 2*time.Minute, 0), want: true},
		{name: "same group and time: name", a: pod("a", "old", 0, 0), b: pod("b", "old", 0, 0), want: true},
		{name: "identical pods are not less", a: pod("a", "old", 0, 0), b: pod("a", "old", 0, 0), want: false},
		{name: "plain pods by their own priority", a: pod("p1", "", time.Hour, 5), b: pod("p2", "", 0, 4), want: true},
		{name: "plain pod by its creation time against a group", a: pod("p", "", 30*time.Minute, 0), b: pod("n", "new", 0, 0), want: true},
		{name: "group created earlier than a plain pod", a: pod("p", "", 30*time.Minute, 0), b: pod("o", "old", 2*time.Hour, 0), want: false},
		{name: "unknown group: the pod's own values", a: pod("x", "missing", 10*time.Minute, 0), b: pod("n", "new", 0, 0), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.Less(tt.a, tt.b); got != tt.want {
				t.Errorf("Less(%s, %s) = %v, want %v", tt.a.UID, tt.b.UID, got, tt.want)
			}
		})
	}
}
