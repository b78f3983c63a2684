package gang

import (
	"testing"
	"time"
)

func TestStatusPhases(t *testing.T) {
	// phases sets the given members of a 3-of-4 group to (node, phase).
	type podState struct{ node, phase string }
	tests := []struct {
		name string
		pods []podState
		// assembling gives the group the slot first.
		assembling bool
		want       GroupStatus
	}{
		{
			name: "too few pods",
			pods: []podState{{"", PodPending}, {"", PodPending}},
			want: GroupStatus{Phase: PhasePending, Pods: 2},
		},
		{
			name: "enough pods, not started",
			pods: []podState{{"", PodPending}, {"", PodPending}, {"", PodPending}},
			want: GroupStatus{Phase: PhasePreScheduling, Pods: 3},
		},
		{
			name:       "assembling",
			pods:       []podState{{"", PodPending}, {"", PodPending}, {"", PodPending}},
			assembling: true,
			want:       GroupStatus{Phase: PhaseScheduling, Pods: 3, ScheduleStartTime: t0},
		},
		{
			name: "scheduled, not yet running",
			pods: []podState{{"n1", PodPending}, {"n1", PodPending}, {"n2", PodRunning}, {"", PodPending}},
			want: GroupStatus{Phase: PhaseScheduled, Pods: 4, Scheduled: 3, Running: 1},
		},
		{
			name: "running",
			pods: []podState{{"n1", PodRunning}, {"n1", PodRunning}, {"n2", PodSucceeded}},
			want: GroupStatus{Phase: PhaseRunning, Pods: 3, Scheduled: 3, Running: 2, Succeeded: 1},
		},
		{
			name: "a member failed after the group ran",
			pods: []podState{{"n1", PodRunning}, {"n1", PodRunning}, {"n2", PodFailed}},
			want: GroupStatus{Phase: PhaseFailed, Pods: 2, Scheduled: 2, Running: 2, Failed: 1},
		},
		{
			name: "finished",
			pods: []podState{{"n1", PodSucceeded}, {"n1", PodSucceeded}, {"n2", PodSucceeded}, {"n2", PodFailed}},
			want: GroupStatus{Phase: PhaseFinished, Pods: 3, Scheduled: 3, Succeeded: 3, Failed: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager(testConfig)
			m.SetGroup(Group{Key: key("g"), MinMember: 3})
			for i, p := range tt.pods {
				uid := string(rune('a' + i))
				m.AddPod(PodRef{UID: uid, Name: uid, Group: key("g"), Node: p.node, Phase: p.phase})
			}
			if tt.assembling {
				mustAssemble(t, m, "a", t0, true)
			}
			got, ok := m.Status(key("g"), at(time.Second))
			if !ok || got != tt.want {
				t.Errorf("Status() = %+v, %v; want %+v", got, ok, tt.want)
			}
		})
	}
}

func TestStatusUnknownGroup(t *testing.T) {
	m := NewManager(testConfig)
	if _, ok := m.Status(key("nope"), t0); ok {
		t.Error("Status of an unknown group reported ok")
	}
	// Pods seen before their PodGroup: no status until it is known.
	addMembers(m, "early", 0, 1, 0)
	if _, ok := m.Status(key("early"), t0); ok {
		t.Error("Status of a group without a PodGroup reported ok")
	}
}

func TestPhaseV1alpha1(t *testing.T) {
	tests := []struct {
		p    Phase
		want string
	}{
		{PhasePending, "Pending"},
		{PhasePreScheduling, "Scheduling"},
		{PhaseScheduling, "Scheduling"},
		{PhaseScheduled, "Scheduling"},
		{PhaseRunning, "Running"},
		{PhaseFailed, "Failed"},
		{PhaseFinished, "Finished"},
	}
	for _, tt := range tests {
		if got := tt.p.V1alpha1(); got != tt.want {
			t.Errorf("%s.V1alpha1() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestStats(t *testing.T) {
	m := NewManager(testConfig)
	addGroup(m, "assembling", 2, 2, 0, 0)
	addGroup(m, "backing-off", 2, 2, 0, 0)
	addGroup(m, "ready", 2, 2, 0, 0)
	addGroup(m, "incomplete", 3, 2, 0, 0)
	addGroup(m, "done", 2, 2, 0, 0)
	addGroup(m, "solo", 1, 1, 0, 0)
	bind(t, m, "n1", "done-0", "done-1")
	mustAssemble(t, m, "backing-off-0", t0, true)
	m.Reject(key("backing-off"), t0, "does not fit")
	mustAssemble(t, m, "assembling-0", t0, true)

	st := m.Stats(t0)
	want := "groups=6 waiting=3 backingOff=1 holder=\"team-a/assembling\" assembled=0 timedOut=0 rejected=1 unreserved=0 aborted=0"
	if st.String() != want {
		t.Errorf("Stats() = %s\nwant       %s", st, want)
	}
	if st := m.Stats(at(time.Second)); st.BackingOff != 0 {
		t.Errorf("BackingOff after the back-off = %d, want 0", st.BackingOff)
	}
}

func TestRecentTimeToScheduleIsBounded(t *testing.T) {
	m := NewManager(testConfig)
	for i := range recentLimit + 6 {
		name := string(rune('A'+i/26)) + string(rune('a'+i%26))
		addGroup(m, name, 2, 2, 0, 0)
		now := at(time.Duration(i) * time.Minute)
		mustAssemble(t, m, name+"-0", now, true)
		mustWait(t, m, name+"-0", "n1", now)
		m.Permit(name+"-1", "n1", now.Add(time.Duration(i)*time.Millisecond))
	}
	got := m.Stats(t0).RecentTimeToSchedule
	if len(got) != recentLimit || got[0] != 6*time.Millisecond || got[len(got)-1] != (recentLimit+5)*time.Millisecond {
		t.Errorf("RecentTimeToSchedule has %d entries from %v to %v, want %d from 6ms to %dms",
			len(got), got[0], got[len(got)-1], recentLimit, recentLimit+5)
	}
}
