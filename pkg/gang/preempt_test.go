package gang

import (
	"slices"
	"testing"
)

func TestExpandVictims(t *testing.T) {
	setup := func(t *testing.T) *Manager {
		m := NewManager(testConfig)
		addGroup(m, "ddp", 3, 4, 0, 0)
		bind(t, m, "n1", "ddp-0", "ddp-1")
		bind(t, m, "n2", "ddp-2")
		// ddp-3 is pending: nothing to evict.
		addGroup(m, "other", 2, 3, 0, 0)
		bind(t, m, "n2", "other-0", "other-1")
		m.UpdatePod(PodRef{UID: "other-2", Name: "other-2", Group: key("other"), Node: "n2", Phase: PodSucceeded})
		m.AddPod(PodRef{UID: "plain", Name: "plain", Node: "n1", Phase: PodRunning})
		return m
	}
	ref := func(uid string, group string) PodRef {
		p := PodRef{UID: uid}
		if group != "" {
			p.Group = key(group)
		}
		return p
	}
	tests := []struct {
		name    string
		victims []PodRef
		want    []string
	}{
		{name: "no victims", want: []string{}},
		{name: "plain pod stays alone", victims: []PodRef{ref("plain", "")}, want: []string{"plain"}},
		{name: "one member takes the whole gang", victims: []PodRef{ref("ddp-1", "ddp")}, want: []string{"ddp-1", "ddp-0", "ddp-2"}},
		{name: "group found by UID", victims: []PodRef{ref("ddp-2", "")}, want: []string{"ddp-2", "ddp-0", "ddp-1"}},
		{
			name:    "two gangs, duplicates dropped, succeeded pods left alone",
			victims: []PodRef{ref("other-1", "other"), ref("plain", ""), ref("ddp-0", "ddp"), ref("other-1", "other")},
			want:    []string{"other-1", "plain", "ddp-0", "ddp-1", "ddp-2", "other-0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := setup(t)
			got := []string{}
			for _, p := range m.ExpandVictims(tt.victims) {
				got = append(got, p.UID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ExpandVictims() = %v, want %v", got, tt.want)
			}
		})
	}
}
