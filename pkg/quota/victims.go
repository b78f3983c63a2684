package quota

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"
)

// SelectVictims chooses which of candidates to preempt so that preemptor can
// run, and reports whether any choice works. fits is supplied by the adapter
// and answers whether the preemptor would fit, on some node and in quota (see
// CheckAdmitWithout), once the given victims are gone; it receives a fresh
// slice on every call.
//
// A candidate is eligible when it is in the preemptor's namespace and has a
// strictly lower priority (ordinary priority preemption), or when it is in
// another namespace that borrows a resource the preemptor needs and would
// get within its own min (reclaim). Reclaim ignores priorities, because
// borrowed capacity is lent, not given, and it never takes a namespace below
// its min for such a resource: a namespace within its min is never a victim,
// and one that borrows only loses pods while it stays at or above its min
// for every resource it borrows that the preemptor reclaims (resources it
// does not borrow, such as CPU below its min while it borrows memory,
// neither make it a victim nor shield it). A
// preemptor that would be above its min for a resource cannot reclaim that
// resource from anyone. A preemptor whose namespace has no quota may only
// preempt lower-priority pods of namespaces without quotas, so quotas cannot
// be bypassed; one whose namespace is misconfigured gets nothing.
//
// Members of one gang (same namespace and Gang key) are taken all together
// or not at all, ordered by their most important member (highest priority,
// then earliest start), and a gang whose eviction would take its namespace
// below min is skipped as a whole.
//
// Eligible candidates are added lowest priority first, then most recently
// started first (the least work lost), then by namespace and UID, until fits
// returns true (the shortest such prefix, found with O(log n) calls of fits
// when fits is monotone, as room and quota are). Victims are then
// reprieved, highest priority first, whenever fits still holds without
// them. The result lists victims in eviction order;
// it is (nil, true) when the preemptor fits without victims and (nil, false)
// when nothing works.
func (t *Tracker) SelectVictims(preemptor PodUsage, candidates []PodUsage, fits func(victims []PodUsage) bool) ([]PodUsage, bool) {
	plan, ok := t.reclaimPlan(preemptor)
	if !ok {
		return nil, false
	}
	if fits(nil) {
		return nil, true
	}

	// The eligible units, in preemption order, each allowed given the ones
	// before it. The first prefix that fits is then found by galloping and
	// bisection: fits is monotone (more victims never take room away), and a
	// fit check can cost a simulation of the whole cluster (a gang's
	// preemption), so O(log n) checks instead of n matter.
	taken := make(map[string]Resources)
	var eligible []*victimUnit
	for _, u := range groupUnits(preemptor.UID, candidates) {
		if !plan.allows(u, taken) {
			continue
		}
		eligible = append(eligible, u)
		used := taken[u.namespace]
		addInto(&used, u.use, 1)
		taken[u.namespace] = used
	}
	if len(eligible) == 0 {
		return nil, false
	}
	lo, hi := 0, 1 // fits(eligible[:lo]) is false
	for !fits(flatten(eligible[:hi])) {
		if hi == len(eligible) {
			return nil, false
		}
		lo, hi = hi, min(2*hi, len(eligible))
	}
	for hi-lo > 1 { // fits(eligible[:hi]) is true
		mid := (lo + hi) / 2
		if fits(flatten(eligible[:mid])) {
			hi = mid
		} else {
			lo = mid
		}
	}
	chosen := slices.Clone(eligible[:hi])

	for i := len(chosen) - 1; i >= 0; i-- {
		trial := slices.Delete(slices.Clone(chosen), i, i+1)
		if fits(flatten(trial)) {
			chosen = trial
		}
	}
	return flatten(chosen), true
}

// reclaimPlan is a copy of the tracker state that victim eligibility depends
// on, taken under the lock so that fits may call back into the Tracker.
type reclaimPlan struct {
	namespace string
	priority  int32
	// governed is whether the preemptor's namespace has a valid quota.
	governed bool
	// hasQuota holds every namespace with at least one quota object.
	hasQuota map[string]bool
	// reclaim lists the resources the preemptor needs and would get within
	// its min; only those can be reclaimed from other namespaces.
	reclaim []string
	// quotas holds the well-formed quotas by namespace.
	quotas map[string]*Quota
	// used holds a private copy of the usage of quota namespaces, without
	// the preemptor's own record.
	used map[string]Resources
}

// reclaimPlan returns the plan for preemptor, or false when its namespace is
// misconfigured and it must wait rather than preempt.
func (t *Tracker) reclaimPlan(preemptor PodUsage) (*reclaimPlan, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	q, problem := t.quotaLocked(preemptor.Namespace)
	if problem != "" {
		return nil, false
	}
	plan := &reclaimPlan{
		namespace: preemptor.Namespace,
		priority:  preemptor.Priority,
		governed:  q != nil,
		hasQuota:  make(map[string]bool, len(t.names)),
	}
	for ns := range t.names {
		plan.hasQuota[ns] = true
	}
	if q == nil {
		return plan, true
	}

	used := t.usageWithoutLocked([]PodUsage{{UID: preemptor.UID}})
	plan.quotas = t.wellFormedLocked()
	plan.used = make(map[string]Resources, len(plan.quotas))
	for ns := range plan.quotas {
		plan.used[ns] = used[ns].Clone()
	}
	for _, name := range sortedNames(preemptor.Resources) {
		amount := preemptor.Resources[name]
		if amount > 0 && q.governs(name) && used[preemptor.Namespace][name]+amount <= q.Min[name] {
			plan.reclaim = append(plan.reclaim, name)
		}
	}
	return plan, true
}

// allows reports whether u may be added to the victims, given what has been
// taken from each namespace so far.
func (p *reclaimPlan) allows(u *victimUnit, taken map[string]Resources) bool {
	if u.namespace == p.namespace {
		return u.priority < p.priority
	}
	if !p.governed {
		return !p.hasQuota[u.namespace] && u.priority < p.priority
	}
	q := p.quotas[u.namespace]
	if q == nil {
		return false
	}
	// Reclaim is per resource: u helps when its namespace borrows (uses
	// above its min) a resource the preemptor is owed and u frees some of
	// it, and it may not take the namespace below its min for any such
	// resource. A resource the namespace does not borrow neither helps nor
	// shields: being under its CPU min does not protect a namespace that
	// borrows memory the preemptor is owed.
	helps := false
	for _, name := range p.reclaim {
		amount := u.use[name]
		if amount <= 0 || !q.governs(name) {
			continue
		}
		have := p.used[u.namespace][name] - taken[u.namespace][name]
		if have <= q.Min[name] {
			continue
		}
		if have-amount < q.Min[name] {
			return false
		}
		helps = true
	}
	return helps
}

// victimUnit is a set of pods preempted together: a single pod, or all the
// candidates of one gang.
type victimUnit struct {
	namespace string
	pods      []PodUsage
	use       Resources
	// priority is the highest priority among the pods.
	priority int32
	// start is the earliest start time among the pods.
	start time.Time
}

func (u *victimUnit) add(p PodUsage) {
	if len(u.pods) == 0 || p.Priority > u.priority {
		u.priority = p.Priority
	}
	if len(u.pods) == 0 || p.StartTime.Before(u.start) {
		u.start = p.StartTime
	}
	u.pods = append(u.pods, p)
	addInto(&u.use, p.Resources, 1)
}

// groupUnits turns candidates into victim units in preemption order,
// dropping the preemptor itself and repeated UIDs.
func groupUnits(preemptorUID string, candidates []PodUsage) []*victimUnit {
	type gangKey struct{ namespace, gang string }
	var units []*victimUnit
	gangs := make(map[gangKey]*victimUnit)
	seen := make(map[string]bool, len(candidates))
	for _, c := range candidates {
		if c.UID == preemptorUID || seen[c.UID] {
			continue
		}
		seen[c.UID] = true
		var u *victimUnit
		if c.Gang != "" {
			u = gangs[gangKey{c.Namespace, c.Gang}]
		}
		if u == nil {
			u = &victimUnit{namespace: c.Namespace}
			units = append(units, u)
			if c.Gang != "" {
				gangs[gangKey{c.Namespace, c.Gang}] = u
			}
		}
		u.add(c)
	}
	for _, u := range units {
		slices.SortFunc(u.pods, func(a, b PodUsage) int { return strings.Compare(a.UID, b.UID) })
	}
	slices.SortFunc(units, func(a, b *victimUnit) int {
		return cmp.Or(
			cmp.Compare(a.priority, b.priority),
			b.start.Compare(a.start),
			strings.Compare(a.namespace, b.namespace),
			strings.Compare(a.pods[0].UID, b.pods[0].UID),
		)
	})
	return units
}

// flatten lists the pods of units in order, in a new slice.
func flatten(units []*victimUnit) []PodUsage {
	var out []PodUsage
	for _, u := range units {
		out = append(out, u.pods...)
	}
	return out
}

// NoCostlier reports whether victim set a costs no more than b by the rules
// SelectVictims follows: no more pods, and none of a higher priority. The
// adapters use it to prefer, among equally cheap sets, one whose freed
// devices suit the preemptor better.
func NoCostlier(a, b []PodUsage) bool {
	top := func(vs []PodUsage) int32 {
		t := int32(math.MinInt32)
		for _, v := range vs {
			t = max(t, v.Priority)
		}
		return t
	}
	return len(a) <= len(b) && top(a) <= top(b)
}
