package gang

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Assembly is TryAssemble's answer.
type Assembly struct {
	// OK lets the member go on to Filter.
	OK bool
	// Started is set when this call gave the group the slot: nothing of
	// the group is reserved yet, so this is when the adapter checks that
	// the whole group fits (FitsAll, CheckMinResources) and calls Reject if
	// it does not.
	Started bool
	// Reason says why the member may not go on, "" when it may.
	Reason string
	// Busy is set when the member may not go on only because another group
	// holds the slot: the adapter reports that with a stable message, since
	// the holder changes often and every changed message is an API write.
	Busy bool
}

// TryAssemble is called at PreFilter for every pod that names a group, and
// grants or refuses the assembly slot.
//
// At most one group holds the slot, and only the holder's members get past
// PreFilter while they still need assembly; so at most one group holds
// reservations at Permit at any time. This is the deadlock fix: two groups
// that fit alone but not together can no longer each reserve part of the
// cluster and wait for the other forever (scheduler-plugins issue 117),
// because the second waits at PreFilter, holding nothing, until the first
// is placed, times out (Expire) or fails (Unreserve, Reject).
//
// The slot is global: the whole cluster is one scheduling domain. That is
// simple and always correct; its cost is that groups which could not
// conflict (disjoint node pools) assemble one after the other, which is
// cheap because an assembly takes MinMember scheduling cycles, a few
// milliseconds each. The holder is never preempted mid-assembly by a
// higher-priority group, since it would lose work already done; instead
// its assembly is bounded by its timeout. The order in which groups get the
// slot is the queue order (Less), because the first member to reach
// PreFilter while the slot is free takes it.
//
// A pod that belongs to no group, and a member of a group of one or of a
// group that already has MinMember placed, needs no slot and passes. A
// member of a group that is not ready (see PreEnqueue) is refused.
func (m *Manager) TryAssemble(uid string, now time.Time) Assembly {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pods[uid]
	if p == nil {
		return Assembly{Reason: fmt.Sprintf("pod %s is not known to the gang manager yet", uid)}
	}
	key := p.ref.Group
	if key == "" {
		return Assembly{OK: true}
	}
	g := m.groups[key]
	if g == nil || g.spec == nil {
		return Assembly{Reason: fmt.Sprintf("pod group %s does not exist", key)}
	}
	if !g.needsAssembly() || m.holder == key {
		return Assembly{OK: true}
	}
	if d := m.readyLocked(g, now); !d.Allow {
		return Assembly{Reason: d.Reason}
	}
	if m.holder != "" {
		g.blocked = true
		return Assembly{Reason: waitingForSlot(m.holder), Busy: true}
	}
	if s := m.starvingLocked(g, now); s != nil {
		g.blocked = true
		return Assembly{Reason: waitingBehind(s)}
	}
	m.holder = key
	m.deadline = now.Add(m.cfg.timeout(g.spec))
	g.started = now
	g.blocked = false
	return Assembly{OK: true, Started: true}
}

// PermitResult is Permit's answer. Exactly one of three outcomes holds:
// Allow; wait (Allow false, Wait positive); or reject (Allow false, Wait 0).
type PermitResult struct {
	// Allow lets this pod bind now.
	Allow bool
	// AllowUIDs lists the group's other members that were waiting at
	// Permit and are allowed by this call, sorted; the adapter allows each
	// of them through the framework's waiting pods.
	AllowUIDs []string
	// Wait is how long this pod should wait at Permit: the time left until
	// the group's assembly deadline.
	Wait time.Duration
	// RejectUIDs lists, when this pod is rejected because its group timed
	// out, the group's other waiting members, which the adapter rejects too.
	RejectUIDs []string
	// Reason explains a wait or a rejection.
	Reason string
	// Assembled is set when this call completed the group's assembly;
	// TimeToSchedule is then the time since the assembly started, for the
	// time-to-schedule histogram.
	Assembled      bool
	TimeToSchedule time.Duration
}

// Permit is called at Permit when the pod has been reserved on node. A
// member of an assembling group waits until the group's placed and
// reserved members together reach MinMember; the call that completes the
// group allows every waiting member at once and frees the slot, and the
// group's failure count is reset. Pods that need no assembly are allowed
// straight away. A member whose group does not hold the slot (its assembly
// has just timed out or been aborted) is rejected, as is every waiting
// member of a group whose deadline has passed.
func (m *Manager) Permit(uid, node string, now time.Time) PermitResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pods[uid]
	if p == nil {
		return PermitResult{Reason: fmt.Sprintf("pod %s is not known to the gang manager yet", uid)}
	}
	key := p.ref.Group
	g := m.groups[key]
	if key != "" && (g == nil || g.spec == nil) {
		return PermitResult{Reason: fmt.Sprintf("pod group %s does not exist", key)}
	}
	if key == "" || !g.needsAssembly() {
		p.waiting, p.allowed = "", node
		return PermitResult{Allow: true}
	}
	if m.holder != key {
		return PermitResult{Reason: fmt.Sprintf("pod group %s is not assembling: its assembly timed out or was aborted", key)}
	}
	if !now.Before(m.deadline) {
		reject := m.timeoutLocked(g, uid, now)
		return PermitResult{RejectUIDs: reject, Reason: g.lastFailure}
	}
	p.waiting, p.allowed = node, ""
	t := g.tally()
	minMember := g.spec.minMember()
	if t.placed+t.waiting < minMember {
		return PermitResult{
			Wait:   m.deadline.Sub(now),
			Reason: fmt.Sprintf("%d of %d members of pod group %s have a place; waiting for the rest", t.placed+t.waiting, minMember, key),
		}
	}
	allow := g.waitingUIDs(uid)
	for _, w := range g.members {
		if w.waiting != "" {
			w.allowed, w.waiting = w.waiting, ""
		}
	}
	m.holder, m.deadline = "", time.Time{}
	g.failures, g.backoffUntil, g.lastFailure = 0, time.Time{}, ""
	g.waitsForRoomSince, g.deferred = time.Time{}, false
	tts := now.Sub(g.started)
	m.stats.assembled++
	m.stats.observe(tts)
	return PermitResult{Allow: true, AllowUIDs: allow, Assembled: true, TimeToSchedule: tts}
}

// Unreserve is called when a reserved pod fails or is rejected after
// Reserve (in a later Reserve plugin, at Permit, or in binding). If the
// pod's group is assembling, the assembly fails as a whole: the slot is
// freed, the group backs off, and the UIDs of the other members waiting at
// Permit are returned for the adapter to reject, so that no partial gang
// keeps devices. The framework calls Unreserve again for each of those;
// those calls find the group no longer assembling and do nothing, so a
// failure is counted once.
//
// A pod that had been allowed and whose binding failed only loses its
// place: its siblings are already binding and cannot be called back. This
// is the one window in which a partial gang can exist; the pod returns to
// the queue and its group assembles again with the bound siblings counted.
func (m *Manager) Unreserve(uid string, now time.Time) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pods[uid]
	if p == nil {
		return nil
	}
	if p.allowed != "" {
		p.allowed = ""
		return nil
	}
	p.waiting = ""
	g := m.groups[p.ref.Group]
	if g == nil || m.holder != g.key {
		return nil
	}
	if !now.Before(m.deadline) {
		return m.timeoutLocked(g, uid, now)
	}
	reject := m.releaseLocked(g)
	m.failLocked(g, now, fmt.Sprintf("member %s failed after its reservation", p.ref.Name))
	m.stats.unreserved++
	return reject
}

// Reject fails the assembly of a group that holds the slot: the adapter
// calls it when the whole-group check at the start of the assembly finds
// that the group cannot fit (early rejection, so a hopeless group costs one
// check rather than MinMember cycles), or at PostFilter when a member found
// no node and preemption cannot make room for the whole group. The slot is
// freed, the group backs off, reason is kept for Status, and the UIDs of
// members already waiting at Permit are returned for the adapter to reject;
// pending members stay pending. A group that does not hold the slot is not
// touched, since its members were only waiting for their turn.
func (m *Manager) Reject(key GroupKey, now time.Time, reason string) []string {
	return m.endAssembly(key, now, reason, true)
}

// Defer ends the assembly of a group that holds the slot because the
// cluster is busy right now, not because the group can never fit: the
// adapter calls it when the whole-group check fails against the current
// cluster but would pass on empty nodes. Unlike Reject it counts no failure
// and starts no back-off: the group waits for room, that is until the
// adapter reports that room may have changed (RoomChanged: a pod left, a
// node came), and tries again at once then, so a group whose room appears
// binds within a scheduling cycle or two, not after a back-off. It cannot
// take the slot back before anything changed, and retries anyway after
// DeferredRecheck in case a change went unseen. The UIDs of members waiting
// at Permit are returned to reject.
func (m *Manager) Defer(key GroupKey, now time.Time, reason string) []string {
	return m.endAssembly(key, now, reason, false)
}

// endAssembly frees the slot held by the group of key and returns its
// members waiting at Permit; failed decides between Reject's growing
// back-off and Defer's fixed initial wait.
func (m *Manager) endAssembly(key GroupKey, now time.Time, reason string, failed bool) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[key]
	if g == nil || m.holder != key {
		return nil
	}
	reject := m.releaseLocked(g)
	if failed {
		m.failLocked(g, now, reason)
		g.waitsForRoomSince, g.deferred = time.Time{}, false
		m.stats.rejected++
	} else {
		g.deferred, g.deferredEpoch, g.deferredAt = true, m.roomEpoch, now
		g.lastFailure = reason
		if g.waitsForRoomSince.IsZero() {
			g.waitsForRoomSince = now
		}
		m.stats.deferred++
	}
	return reject
}

// Expire ends the holder's assembly if its deadline has passed: the slot is
// freed, the group backs off, and the UIDs of its members waiting at Permit
// are returned for the adapter to reject. The adapter calls it at every
// PreFilter and on a timer at the deadline that Holder reports, so that a
// group whose members stopped coming (stuck in the queue's own back-off)
// cannot hold the slot past its timeout.
func (m *Manager) Expire(now time.Time) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.holder == "" || now.Before(m.deadline) {
		return nil
	}
	return m.timeoutLocked(m.groups[m.holder], "", now)
}

// RoomChanged tells the Manager that room for groups may have appeared: a
// pod left a node (deleted or finished), a node was added or grew. It
// returns the groups deferred for lack of room, in queue order, for the
// adapter to wake: each may now try to assemble again.
func (m *Manager) RoomChanged() []GroupKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roomEpoch++
	var gs []*groupState
	for _, g := range m.groups {
		if g.deferred && g.spec != nil && g.needsAssembly() {
			gs = append(gs, g)
		}
	}
	return queueOrder(gs)
}

// Holder returns the group that holds the assembly slot and the deadline of
// its assembly, and false when the slot is free.
func (m *Manager) Holder() (GroupKey, time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.holder, m.deadline, m.holder != ""
}

// Blocked returns the groups that PreEnqueue or TryAssemble turned away
// because another group held the slot and that have not held it since, in
// queue order. Whenever the slot is free after a call that may free it
// (Permit, Expire, Unreserve, Reject, DeleteGroup, DeletePod) the adapter
// activates their pending pods, which otherwise would wait for the queue's
// periodic flush.
func (m *Manager) Blocked() []GroupKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	var gs []*groupState
	for _, g := range m.groups {
		if g.blocked && g.spec != nil && m.holder != g.key {
			gs = append(gs, g)
		}
	}
	return queueOrder(gs)
}

// queueOrder returns the keys of gs in the queue order of groups.
func queueOrder(gs []*groupState) []GroupKey {
	slices.SortFunc(gs, func(a, b *groupState) int {
		return cmp.Or(cmp.Compare(b.spec.Priority, a.spec.Priority), a.spec.Created.Compare(b.spec.Created), cmp.Compare(a.key, b.key))
	})
	out := make([]GroupKey, len(gs))
	for i, g := range gs {
		out[i] = g.key
	}
	return out
}

// timeoutLocked fails the holder g's assembly for passing its deadline and
// returns its waiting members other than except.
func (m *Manager) timeoutLocked(g *groupState, except string, now time.Time) []string {
	timeout := m.cfg.timeout(g.spec)
	reject := m.releaseLocked(g)
	reject = slices.DeleteFunc(reject, func(uid string) bool { return uid == except })
	m.failLocked(g, now, fmt.Sprintf("pod group %s did not assemble within %v", g.key, timeout))
	m.stats.timedOut++
	return reject
}

// releaseLocked frees the slot held by g and drops every reservation of its
// members, returning the UIDs of those that were waiting, sorted.
func (m *Manager) releaseLocked(g *groupState) []string {
	reject := g.waitingUIDs("")
	for _, p := range g.members {
		p.waiting = ""
	}
	m.holder, m.deadline = "", time.Time{}
	return reject
}

// failLocked counts a failed assembly of g and starts its back-off.
func (m *Manager) failLocked(g *groupState, now time.Time, reason string) {
	g.failures++
	g.backoffUntil = now.Add(m.cfg.Backoff(g.failures))
	g.lastFailure = reason
}

// starvingLocked returns the group that g must wait behind so that it is
// not starved, or nil. A group starves when it has waited for room for
// Config.StarvationAfter (every assembly deferred because the cluster is
// busy, see Defer), while smaller groups keep assembling in the room that
// running work gives back. From then on, groups that come after it in the
// queue order (lower priority, or equal priority and younger) do not start
// assembling: the room freed accumulates until the starving group fits.
// Higher-priority and older groups are not held back, and neither are pods
// outside groups. Among several starving groups the first in queue order is
// returned.
func (m *Manager) starvingLocked(g *groupState, now time.Time) *groupState {
	var first *groupState
	for _, s := range m.groups {
		if s == g || s.spec == nil || s.waitsForRoomSince.IsZero() || !s.needsAssembly() ||
			now.Sub(s.waitsForRoomSince) < m.cfg.StarvationAfter || !groupBefore(s, g) {
			continue
		}
		if first == nil || groupBefore(s, first) {
			first = s
		}
	}
	return first
}

// groupBefore reports whether a comes before b in the queue order of
// groups (Less): higher priority, then older, then by key.
func groupBefore(a, b *groupState) bool {
	return cmp.Or(
		cmp.Compare(b.spec.Priority, a.spec.Priority),
		a.spec.Created.Compare(b.spec.Created),
		cmp.Compare(a.key, b.key),
	) < 0
}

// waitingBehind is the reason given to members of a group held back for a
// starving group s; it names the time s began to wait, not a duration, so
// that it does not change (each change is an API write).
func waitingBehind(s *groupState) string {
	return fmt.Sprintf("waiting behind pod group %s, which has waited for room since %s: younger and lower-priority groups do not start until it runs",
		s.key, s.waitsForRoomSince.UTC().Format(time.RFC3339))
}
