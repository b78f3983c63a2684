package quota

import (
	"fmt"
	"maps"
	"strings"
)

// Decision is the answer to an admission check. Besides yes or no it says
// whether preempting borrowers could turn a no into a yes, which is what the
// adapter needs to decide between waiting and reclaiming.
type Decision struct {
	// Admit is true when the request fits the namespace's quota.
	Admit bool
	// Governed is false when the namespace has no quota object, in which
	// case the request is admitted without checks.
	Governed bool
	// Reclaimable is true for a rejection that preempting pods of borrowing
	// namespaces would resolve: every rejected resource is within the
	// namespace's min and is short only because others borrow it.
	Reclaimable bool
	// Reason explains a rejection (or an ungoverned admission), naming the
	// namespace, resource and amounts, for pod conditions and events.
	Reason string
	// Borrow is, for an admitted request, the part of it above the
	// namespace's min per resource; it is empty when the request is entirely
	// guaranteed.
	Borrow Resources
}

// CheckAdmit decides whether namespace may start a pod requesting req,
// applying the rules in the package documentation to every resource that
// the namespace's quota governs. A namespace without a quota is admitted; a
// misconfigured one is rejected (not reclaimable) until it is fixed. The
// check does not record anything: call AddPod, or use AdmitPod to check and
// record atomically.
func (t *Tracker) CheckAdmit(namespace string, req Resources) Decision {
	return t.CheckAdmitWithout(namespace, req, nil)
}

// CheckAdmitWithout is CheckAdmit as if the tracked pods with the UIDs of
// evicted were gone. It is the quota half of the fits callback given to
// SelectVictims: "would the preemptor be admitted once these victims are
// preempted?". Pods the tracker does not know are ignored.
func (t *Tracker) CheckAdmitWithout(namespace string, req Resources, evicted []PodUsage) Decision {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.checkLocked(namespace, req, evicted)
}

// AdmitPod checks p like CheckAdmit and, if admitted, records it like AddPod
// under the same lock, so that concurrent callers can never jointly push a
// namespace past its max. An earlier record with p's UID is replaced, not
// added to, both for the check and for the usage.
func (t *Tracker) AdmitPod(p PodUsage) Decision {
	p.Resources = p.Resources.Clone()
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.checkLocked(p.Namespace, p.Resources, []PodUsage{{UID: p.UID}})
	if d.Admit {
		t.addPodLocked(p)
	}
	return d
}

func (t *Tracker) checkLocked(namespace string, req Resources, evicted []PodUsage) Decision {
	q, problem := t.quotaLocked(namespace)
	if problem != "" {
		return Decision{Governed: true, Reason: problem}
	}
	if q == nil {
		return Decision{Admit: true, Reason: fmt.Sprintf("namespace %q has no ElasticQuota", namespace)}
	}

	used := t.usageWithoutLocked(evicted)
	quotas := t.wellFormedLocked()
	var (
		borrow      Resources
		reasons     []string
		reclaimable = true
	)
	for _, name := range sortedNames(req) {
		amount := req[name]
		if amount <= 0 || !q.governs(name) {
			continue
		}
		c := newResourceCheck(namespace, name, quotas, used, t.capacity[name])
		ok, canReclaim, borrowed, reason := c.admit(amount)
		if !ok {
			reasons = append(reasons, reason)
			reclaimable = reclaimable && canReclaim
			continue
		}
		if borrowed > 0 {
			if borrow == nil {
				borrow = make(Resources)
			}
			borrow[name] = borrowed
		}
	}
	if len(reasons) > 0 {
		return Decision{Governed: true, Reclaimable: reclaimable, Reason: strings.Join(reasons, "; ")}
	}
	return Decision{Admit: true, Governed: true, Borrow: borrow}
}

// usageWithoutLocked returns per-namespace usage with the tracked pods named
// by evicted taken out. It shares unchanged entries with t.used, so the
// result must be treated as read-only.
func (t *Tracker) usageWithoutLocked(evicted []PodUsage) map[string]Resources {
	if len(evicted) == 0 {
		return t.used
	}
	out := maps.Clone(t.used)
	seen := make(map[string]bool, len(evicted))
	copied := make(map[string]bool)
	for _, e := range evicted {
		p, ok := t.pods[e.UID]
		if !ok || seen[e.UID] {
			continue
		}
		seen[e.UID] = true
		u := out[p.Namespace]
		if !copied[p.Namespace] {
			u = u.Clone()
			copied[p.Namespace] = true
		}
		addInto(&u, p.Resources, -1)
		out[p.Namespace] = u
	}
	return out
}

// resourceCheck is the state of one resource as seen by one namespace: its
// own usage and quota, and the lending pool formed by everybody else.
type resourceCheck struct {
	namespace, resource string
	used                int64
	min                 int64
	max                 int64
	bounded             bool
	// othersUnused is Σ max(0, min - used) over other governing quotas.
	othersUnused int64
	// othersBorrowed is Σ max(0, used - min) over other governing quotas.
	othersBorrowed int64
	// unguaranteed is max(0, capacity - Σ min over all quotas).
	unguaranteed int64
}

func newResourceCheck(namespace, resource string, quotas map[string]*Quota, used map[string]Resources, capacity int64) resourceCheck {
	q := quotas[namespace]
	c := resourceCheck{
		namespace: namespace,
		resource:  resource,
		used:      used[namespace][resource],
		min:       q.Min[resource],
	}
	c.max, c.bounded = q.Max[resource]
	var sumMin int64
	for ns, other := range quotas {
		m := other.Min[resource]
		sumMin += m
		if ns == namespace || !other.governs(resource) {
			continue
		}
		if u := used[ns][resource]; u < m {
			c.othersUnused += m - u
		} else {
			c.othersBorrowed += u - m
		}
	}
	c.unguaranteed = max(0, capacity-sumMin)
	return c
}

// admit applies the per-resource admission rules to a request of amount. It
// returns whether the request fits, whether a misfit could be fixed by
// reclaim, how much of the request is borrowed, and why it does not fit.
func (c resourceCheck) admit(amount int64) (ok, reclaimable bool, borrowed int64, reason string) {
	after := c.used + amount
	if c.bounded && after > c.max {
		return false, false, 0, fmt.Sprintf("namespace %q would use %d %s, above its max %d",
			c.namespace, after, c.resource, c.max)
	}
	if after > c.min {
		want := after - c.min
		lendable := c.othersUnused + c.unguaranteed - c.othersBorrowed
		if want > lendable {
			return false, false, 0, fmt.Sprintf("namespace %q would use %d %s, %d above its min %d, but only %d can be borrowed (unused min of other namespaces %d + unguaranteed capacity %d - borrowed by other namespaces %d)",
				c.namespace, after, c.resource, want, c.min, max(0, lendable), c.othersUnused, c.unguaranteed, c.othersBorrowed)
		}
		return true, false, after - max(c.used, c.min), ""
	}
	if short := c.othersBorrowed - (c.othersUnused + (c.min - after) + c.unguaranteed); short > 0 {
		return false, true, 0, fmt.Sprintf("namespace %q would use %d %s, within its min %d, but other namespaces borrow %d of it; preempting borrowers can reclaim it",
			c.namespace, after, c.resource, c.min, short)
	}
	return true, false, 0, ""
}

// AboveMax returns why req alone exceeds the max of namespace's quota for
// some resource, "" when it does not (or the namespace has no valid quota).
// Such a request can never be admitted, whatever else runs; the Gang plugin
// uses it to reject a whole group at once instead of letting it wait.
func (t *Tracker) AboveMax(namespace string, req Resources) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	q, _ := t.quotaLocked(namespace)
	if q == nil {
		return ""
	}
	var reasons []string
	for _, name := range sortedNames(req) {
		if hi, ok := q.Max[name]; ok && req[name] > hi {
			reasons = append(reasons, fmt.Sprintf("%d %s is above namespace %q's max %d", req[name], name, namespace, hi))
		}
	}
	return strings.Join(reasons, "; ")
}
