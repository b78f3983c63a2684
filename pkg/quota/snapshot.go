package quota

import (
	"maps"
	"slices"
)

// QuotaStatus is a read-only view of one namespace's quota, shaped for
// metrics and for the ElasticQuota status: every map is a private copy.
type QuotaStatus struct {
	// Namespace is the namespace the quota governs.
	Namespace string
	// Quotas lists the names of the namespace's quota objects, sorted; more
	// than one means the namespace is misconfigured.
	Quotas []string
	// Min and Max are those of the effective quota object; both are nil when
	// the namespace has several objects and none is effective.
	Min, Max Resources
	// Used is the namespace's usage over all resources, assumed pods
	// included.
	Used Resources
	// Borrowed is, per governed resource, how far Used exceeds Min; it is
	// empty for a misconfigured namespace, whose quota does not count.
	Borrowed Resources
	// Problem says why the namespace is misconfigured, "" if it is not.
	Problem string
}

// Snapshot returns the status of every namespace with at least one quota
// object, sorted by namespace so that metrics scrapes and tests are stable.
func (t *Tracker) Snapshot() []QuotaStatus {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]QuotaStatus, 0, len(t.names))
	for _, ns := range slices.Sorted(maps.Keys(t.names)) {
		names := t.namesLocked(ns)
		s := QuotaStatus{
			Namespace: ns,
			Quotas:    names,
			Used:      t.used[ns].Clone(),
			Borrowed:  Resources{},
		}
		if len(names) == 1 {
			obj := t.quotas[names[0]]
			s.Min, s.Max = obj.quota.Min.Clone(), obj.quota.Max.Clone()
		}
		q, problem := t.quotaLocked(ns)
		s.Problem = problem
		if q != nil {
			for name, u := range s.Used {
				if q.governs(name) && u > q.Min[name] {
					s.Borrowed[name] = u - q.Min[name]
				}
			}
		}
		out = append(out, s)
	}
	return out
}
