package gang

import (
	"cmp"
	"slices"
)

// ExpandVictims completes a preemption victim list so that no gang is
// partly evicted: for every victim that belongs to a group, every other
// member of that group that holds a place (bound or permitted, and neither
// succeeded nor failed) is added. Evicting part of a gang would leave the
// rest holding devices without making progress, and in scheduler-plugins'
// experience the controller then restarts the whole job anyway.
//
// The victims come first, in their order and without duplicates; the added
// members follow, by group key, then creation time, name and UID. A
// victim's group is its Group field or, when that is empty, the group the
// Manager knows for its UID.
//
// Preemption by a gang is the other half, and the adapter's: at PostFilter
// a member nominates victims only if, with them gone, the whole pending
// group fits (FitsAll on Pending's members); otherwise it calls Reject.
func (m *Manager) ExpandVictims(victims []PodRef) []PodRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[string]bool, len(victims))
	groups := make(map[GroupKey]bool)
	out := make([]PodRef, 0, len(victims))
	for _, v := range victims {
		if seen[v.UID] {
			continue
		}
		seen[v.UID] = true
		out = append(out, v)
		key := v.Group
		if p := m.pods[v.UID]; key == "" && p != nil {
			key = p.ref.Group
		}
		if key != "" {
			groups[key] = true
		}
	}
	var added []PodRef
	for key := range groups {
		g := m.groups[key]
		if g == nil {
			continue
		}
		for uid, p := range g.members {
			if !seen[uid] && p.placed() && p.ref.Phase != PodSucceeded {
				seen[uid] = true
				added = append(added, p.ref)
			}
		}
	}
	slices.SortFunc(added, func(a, b PodRef) int { return cmp.Or(cmp.Compare(a.Group, b.Group), comparePods(a, b)) })
	return append(out, added...)
}
