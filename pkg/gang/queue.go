package gang

import (
	"cmp"
	"fmt"
	"time"
)

// Decision is the answer to a gating question: whether the pod may go on,
// and if not, why, in words fit for a pod condition or an event.
type Decision struct {
	// Allow lets the pod proceed.
	Allow bool
	// Reason says why the pod may not proceed, "" when it may.
	Reason string
	// RetryAfter, when positive, is how long until the answer may change by
	// itself (the end of a back-off). The adapter can activate the pod then
	// instead of waiting for the queue's periodic flush.
	RetryAfter time.Duration
}

// PreEnqueue decides whether the pod may enter the active queue. A member
// is held back while its group does not exist, while fewer than MinMember
// of the group's pods exist (bound and pending ones count, failed ones do
// not), while the group backs off after a failed assembly, and while
// another group holds the assembly slot (see TryAssemble): in all these
// cases a scheduling cycle could only fail or, worse, reserve devices for a
// group that cannot complete. Gating the last case here rather than only at
// PreFilter keeps the members of waiting groups from costing a scheduling
// cycle each, every time their back-off ends, while another group
// assembles; the group is listed by Blocked so that the adapter re-runs
// PreEnqueue for its pods when the slot is freed.
//
// Pods that belong to no group, and members of a group that already has
// MinMember placed, always pass. A pod unknown to the Manager is held back;
// the adapter calls AddPod first, so this only happens when it did not.
func (m *Manager) PreEnqueue(uid string, now time.Time) Decision {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pods[uid]
	if p == nil {
		return Decision{Reason: fmt.Sprintf("pod %s is not known to the gang manager yet", uid)}
	}
	if p.ref.Group == "" {
		return Decision{Allow: true}
	}
	g := m.groups[p.ref.Group]
	if g == nil || g.spec == nil {
		return Decision{Reason: fmt.Sprintf("pod group %s does not exist", p.ref.Group)}
	}
	if !g.needsAssembly() {
		return Decision{Allow: true}
	}
	if d := m.readyLocked(g, now); !d.Allow {
		return d
	}
	if m.holder != "" && m.holder != g.key {
		g.blocked = true
		return Decision{Reason: waitingForSlot(m.holder)}
	}
	if s := m.starvingLocked(g, now); s != nil && m.holder != g.key {
		g.blocked = true
		return Decision{Reason: waitingBehind(s)}
	}
	return Decision{Allow: true}
}

// DeferredRecheck is how long a group deferred for lack of room waits when
// no RoomChanged comes: a safety net for a change the adapter could not
// report, or reported before the scheduler's snapshot showed it.
const DeferredRecheck = 5 * time.Second

// waitingForSlot is the reason given to members of a group that waits for
// the holder of the assembly slot.
func waitingForSlot(holder GroupKey) string {
	return fmt.Sprintf("waiting for pod group %s to finish assembling", holder)
}

// readyLocked checks that g, which needs assembly, has enough pods and is
// not backing off.
func (m *Manager) readyLocked(g *groupState, now time.Time) Decision {
	t := g.tally()
	if minMember := g.spec.minMember(); t.exist < minMember {
		return Decision{Reason: fmt.Sprintf("%d of %d pods of pod group %s exist", t.exist, minMember, g.key)}
	}
	if now.Before(g.backoffUntil) {
		left := g.backoffUntil.Sub(now)
		return Decision{
			Reason:     fmt.Sprintf("pod group %s is backing off for %v after %d failed attempts", g.key, left.Round(time.Millisecond), g.failures),
			RetryAfter: left,
		}
	}
	if g.deferred && g.deferredEpoch == m.roomEpoch {
		if retry := g.deferredAt.Add(DeferredRecheck); now.Before(retry) {
			// Nothing has left the cluster since the group found it full.
			return Decision{Reason: g.lastFailure, RetryAfter: retry.Sub(now)}
		}
	}
	return Decision{Allow: true}
}

// Less is the QueueSort order. Higher priority goes first. Among equal
// priorities the older group goes first, group age being the PodGroup's
// creation time and, for a pod without a known group, the pod's own. Ties
// are broken by group key, so that the members of one group are contiguous,
// then by pod creation time, name and UID, so that the order is total and
// deterministic.
//
// Keeping a group contiguous is what lets one group assemble at a time: its
// members reach PreFilter back to back, while the slot is theirs. Members
// of a known group are ordered by Group.Priority rather than their own, for
// the same reason.
func (m *Manager) Less(a, b PodRef) bool {
	m.mu.Lock()
	ka, kb := m.sortKeyLocked(a), m.sortKeyLocked(b)
	m.mu.Unlock()
	return ka.compare(kb) < 0
}

// sortKey is a pod's position in the queue order.
type sortKey struct {
	priority int32
	since    time.Time
	group    GroupKey
	pod      PodRef
}

func (m *Manager) sortKeyLocked(p PodRef) sortKey {
	k := sortKey{priority: p.Priority, since: p.Created, group: p.Group, pod: p}
	if g := m.groups[p.Group]; g != nil && g.spec != nil {
		k.priority, k.since = g.spec.Priority, g.spec.Created
	}
	return k
}

func (a sortKey) compare(b sortKey) int {
	return cmp.Or(
		cmp.Compare(b.priority, a.priority),
		a.since.Compare(b.since),
		cmp.Compare(a.group, b.group),
		comparePods(a.pod, b.pod),
	)
}
