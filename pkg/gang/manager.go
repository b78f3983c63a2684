package gang

import (
	"cmp"
	"maps"
	"slices"
	"sync"
	"time"
)

// Manager tracks pod groups and their members and makes every gang decision
// of the scheduling cycle. It holds no clock: every decision that depends on
// time takes now as an argument, which keeps it deterministic under test.
// It is safe for concurrent use; one mutex guards all state, since every
// call is short and Permit, Unreserve and the informer handlers run on
// different goroutines.
type Manager struct {
	cfg Config

	mu sync.Mutex
	// groups holds every group that has a spec or members, by key.
	groups map[GroupKey]*groupState
	// pods holds every known pod, by UID.
	pods map[string]*member
	// holder is the group that holds the assembly slot, "" when it is free.
	holder GroupKey
	// deadline is when the holder's assembly times out.
	deadline time.Time
	// roomEpoch counts RoomChanged calls: a group deferred for lack of
	// room tries again once it has changed.
	roomEpoch uint64
	// stats are the counters reported by Stats.
	stats counters
}

// groupState is everything known about one group.
type groupState struct {
	key GroupKey
	// spec is the group's definition, nil while the PodGroup object is not
	// known (its pods may be seen first).
	spec *Group
	// members holds the group's pods by UID.
	members map[string]*member
	// failures counts consecutive failed assemblies; reset by a successful
	// one.
	failures int
	// backoffUntil is when the group may try to assemble again.
	backoffUntil time.Time
	// started is when the current or most recent assembly began, zero if
	// none ever did.
	started time.Time
	// blocked is set when TryAssemble turned a member away because another
	// group held the slot, and cleared when the group gets the slot.
	blocked bool
	// lastFailure says why the most recent assembly failed, "" after a
	// successful one.
	lastFailure string
	// waitsForRoomSince is when the group's assembly was first deferred
	// for lack of room (Defer) since it last assembled or was rejected;
	// zero while it does not wait for room. See starvingLocked.
	waitsForRoomSince time.Time
	// deferred is set while the group waits for room after Defer:
	// deferredEpoch is the roomEpoch it was deferred at, deferredAt when.
	deferred      bool
	deferredEpoch uint64
	deferredAt    time.Time
}

// tally counts a group's members by state.
type tally struct {
	// exist counts members that have not failed; PreEnqueue needs
	// MinMember of them.
	exist int
	// placed counts members bound or permitted (see member.placed).
	placed int
	// waiting counts members reserved and waiting at Permit.
	waiting int
	// running, succeeded and failed count members by pod phase.
	running, succeeded, failed int
}

func (g *groupState) tally() tally {
	var t tally
	for _, m := range g.members {
		switch m.ref.Phase {
		case PodRunning:
			t.running++
		case PodSucceeded:
			t.succeeded++
		case PodFailed:
			t.failed++
		}
		if !m.failed() {
			t.exist++
		}
		if m.placed() {
			t.placed++
		}
		if m.waiting != "" {
			t.waiting++
		}
	}
	return t
}

// needsAssembly reports whether g's members must be co-scheduled: the group
// is defined, has a minimum above one, and has fewer members placed than
// that minimum. A group that already has its minimum placed schedules
// further members (extras, replacements) as plain pods.
func (g *groupState) needsAssembly() bool {
	return g.spec != nil && g.spec.minMember() > 1 && g.tally().placed < g.spec.minMember()
}

// sortedMembers returns g's members in creation order, then by name and
// UID, so that every list the Manager returns is deterministic.
func (g *groupState) sortedMembers() []*member {
	ms := slices.Collect(maps.Values(g.members))
	slices.SortFunc(ms, func(a, b *member) int { return comparePods(a.ref, b.ref) })
	return ms
}

// waitingUIDs returns the UIDs of g's members waiting at Permit, sorted,
// leaving out except.
func (g *groupState) waitingUIDs(except string) []string {
	var out []string
	for uid, m := range g.members {
		if m.waiting != "" && uid != except {
			out = append(out, uid)
		}
	}
	slices.Sort(out)
	return out
}

// comparePods orders pods by creation time, then name, then UID.
func comparePods(a, b PodRef) int {
	return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.Name, b.Name), cmp.Compare(a.UID, b.UID))
}

// NewManager returns an empty Manager. Non-positive fields of cfg take
// their DefaultConfig values.
func NewManager(cfg Config) *Manager {
	return &Manager{
		cfg:    cfg.withDefaults(),
		groups: make(map[GroupKey]*groupState),
		pods:   make(map[string]*member),
	}
}

// groupLocked returns the state of key, creating it if needed.
func (m *Manager) groupLocked(key GroupKey) *groupState {
	g := m.groups[key]
	if g == nil {
		g = &groupState{key: key, members: make(map[string]*member)}
		m.groups[key] = g
	}
	return g
}

// gcLocked forgets g once it has neither a spec nor members, unless it
// holds the slot; its back-off is forgotten with it, which is right since a
// group that is recreated is a new group.
func (m *Manager) gcLocked(g *groupState) {
	if g.spec == nil && len(g.members) == 0 && m.holder != g.key {
		delete(m.groups, g.key)
	}
}

// SetGroup records or replaces a group's definition. Members and back-off
// state are kept, so an update of the PodGroup object (a new MinMember, a
// new timeout) takes effect without losing track of anything; a change of
// an assembling group's MinMember takes effect at its next Permit.
func (m *Manager) SetGroup(g Group) {
	g = g.clone()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.groupLocked(g.Key).spec = &g
}

// DeleteGroup forgets a group's definition; its pods stay known (they are
// gated by PreEnqueue until the group exists again). If the group was
// assembling, the assembly is aborted and the UIDs of the members waiting
// at Permit are returned: the adapter rejects them so that they release
// their reservations.
func (m *Manager) DeleteGroup(key GroupKey) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[key]
	if g == nil {
		return nil
	}
	g.spec = nil
	var reject []string
	if m.holder == key {
		reject = m.releaseLocked(g)
		m.stats.aborted++
	}
	m.gcLocked(g)
	return reject
}

// AddPod records p, replacing any earlier record with the same UID, so that
// replayed or reordered informer events never count a pod twice. A pod
// whose Group changes moves to the new group and loses any reservation. A
// pod that shows a Node is bound: it is no longer waiting or merely
// permitted.
func (m *Manager) AddPod(p PodRef) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.pods[p.UID]
	if old != nil && old.ref.Group != p.Group {
		m.removePodLocked(p.UID)
		old = nil
	}
	if old == nil {
		old = &member{}
		m.pods[p.UID] = old
		if p.Group != "" {
			m.groupLocked(p.Group).members[p.UID] = old
		}
	}
	old.ref = p
	if p.Node != "" || p.Phase == PodSucceeded || p.Phase == PodFailed {
		old.waiting, old.allowed = "", ""
	}
}

// UpdatePod is AddPod under the name that the informer's update handler
// expects; adds and updates are the same idempotent upsert.
func (m *Manager) UpdatePod(p PodRef) { m.AddPod(p) }

// DeletePod forgets the pod with the given UID; unknown UIDs are ignored.
// If the pod's group is assembling and now has fewer than MinMember pods,
// the assembly cannot complete, so it is aborted without back-off (the
// group is gated by PreEnqueue until pods are replaced) and the UIDs of the
// members waiting at Permit are returned for the adapter to reject.
func (m *Manager) DeletePod(uid string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pods[uid]
	if p == nil {
		return nil
	}
	key := p.ref.Group
	m.removePodLocked(uid)
	g := m.groups[key]
	if g == nil || m.holder != key || g.spec == nil || g.tally().exist >= g.spec.minMember() {
		return nil
	}
	reject := m.releaseLocked(g)
	m.stats.aborted++
	return reject
}

func (m *Manager) removePodLocked(uid string) {
	p := m.pods[uid]
	delete(m.pods, uid)
	if g := m.groups[p.ref.Group]; g != nil {
		delete(g.members, uid)
		m.gcLocked(g)
	}
}

// GangOf returns the group of the pod with the given UID, and false if the
// pod is unknown or belongs to no group.
func (m *Manager) GangOf(uid string) (GroupKey, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pods[uid]
	if p == nil || p.ref.Group == "" {
		return "", false
	}
	return p.ref.Group, true
}

// Members returns the known pods of a group in creation order (then name,
// then UID).
func (m *Manager) Members(key GroupKey) []PodRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[key]
	if g == nil {
		return nil
	}
	var out []PodRef
	for _, p := range g.sortedMembers() {
		out = append(out, p.ref)
	}
	return out
}

// Pending returns the members of a group that still need a place (not
// bound, permitted or reserved, and not terminated), in creation order, and
// how many of them must be placed for the group to reach MinMember. This is
// the input of the whole-group fit check (FitsAll) at PreFilter and of
// whole-gang preemption at PostFilter. need is 0 when the group is unknown
// or already complete.
func (m *Manager) Pending(key GroupKey) (pods []PodRef, need int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[key]
	if g == nil {
		return nil, 0
	}
	for _, p := range g.sortedMembers() {
		if p.pending() {
			pods = append(pods, p.ref)
		}
	}
	if g.spec != nil {
		t := g.tally()
		need = max(0, g.spec.minMember()-t.placed-t.waiting)
	}
	return pods, need
}
