package quota

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Tracker holds every quota object and the usage of every pod, and answers
// admission and reclaim questions from them. It mirrors the API server
// (quota objects are recorded even when invalid) so that fixing or deleting
// an object is enough to recover. It is safe for concurrent use.
type Tracker struct {
	mu sync.RWMutex
	// quotas holds every quota object by name.
	quotas map[string]quotaObject
	// names indexes quota object names by namespace.
	names map[string]map[string]struct{}
	// pods holds every pod by UID.
	pods map[string]PodUsage
	// used is the sum of the pods' resources per namespace.
	used map[string]Resources
	// capacity is the cluster's total allocatable capacity.
	capacity Resources
}

// quotaObject is one recorded quota object and its validation result.
type quotaObject struct {
	quota Quota
	err   error
}

// NewTracker returns an empty Tracker: no quotas, so every namespace is
// ungoverned, and no capacity, so nothing can be borrowed beyond unused
// guarantees until SetClusterCapacity is called.
func NewTracker() *Tracker {
	return &Tracker{
		quotas: make(map[string]quotaObject),
		names:  make(map[string]map[string]struct{}),
		pods:   make(map[string]PodUsage),
		used:   make(map[string]Resources),
	}
}

// SetQuota records or replaces the quota object called name (the object's
// cluster-unique key, such as "team-a/quota"). The object is recorded even
// when it is rejected, because dropping it would leave its namespace
// ungoverned and its pods scheduled unchecked; instead the namespace becomes
// misconfigured until the problem is fixed. The returned error says why: the
// Validate error, or a second object for a namespace that already has one,
// naming every object of that namespace.
func (t *Tracker) SetQuota(name string, q Quota) error {
	verr := Validate(q)
	q = Quota{Namespace: q.Namespace, Min: q.Min.Clone(), Max: q.Max.Clone()}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.deleteQuotaLocked(name)
	t.quotas[name] = quotaObject{quota: q, err: verr}
	if t.names[q.Namespace] == nil {
		t.names[q.Namespace] = make(map[string]struct{})
	}
	t.names[q.Namespace][name] = struct{}{}

	if verr != nil {
		return fmt.Errorf("ElasticQuota %q is invalid: %w", name, verr)
	}
	if names := t.namesLocked(q.Namespace); len(names) > 1 {
		return duplicateError(q.Namespace, names)
	}
	return nil
}

// DeleteQuota forgets the quota object called name. Deleting one of two
// objects of a namespace makes the remaining one effective; deleting the last
// leaves the namespace ungoverned. Deleting an unknown name does nothing.
func (t *Tracker) DeleteQuota(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deleteQuotaLocked(name)
}

func (t *Tracker) deleteQuotaLocked(name string) {
	old, ok := t.quotas[name]
	if !ok {
		return
	}
	delete(t.quotas, name)
	delete(t.names[old.quota.Namespace], name)
	if len(t.names[old.quota.Namespace]) == 0 {
		delete(t.names, old.quota.Namespace)
	}
}

// SetClusterCapacity sets the cluster's total allocatable capacity. The part
// of it not guaranteed to any quota can be borrowed; a resource missing here
// has no such part, so it can only be borrowed from unused guarantees.
func (t *Tracker) SetClusterCapacity(capacity Resources) {
	c := capacity.Clone()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.capacity = c
}

// AddPod records p's usage, replacing any earlier record with the same UID
// (its namespace included), so that repeated or updated events never count a
// pod twice.
func (t *Tracker) AddPod(p PodUsage) {
	p.Resources = p.Resources.Clone()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addPodLocked(p)
}

func (t *Tracker) addPodLocked(p PodUsage) {
	t.removePodLocked(p.UID)
	t.pods[p.UID] = p
	u := t.used[p.Namespace]
	addInto(&u, p.Resources, 1)
	t.used[p.Namespace] = u
}

// RemovePod forgets the pod with the given UID and releases its usage.
// Removing an unknown UID does nothing, so deletes may be replayed.
func (t *Tracker) RemovePod(uid string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removePodLocked(uid)
}

func (t *Tracker) removePodLocked(uid string) {
	p, ok := t.pods[uid]
	if !ok {
		return
	}
	delete(t.pods, uid)
	u := t.used[p.Namespace]
	addInto(&u, p.Resources, -1)
	if len(u) == 0 {
		delete(t.used, p.Namespace)
		return
	}
	t.used[p.Namespace] = u
}

// Governs reports whether an ElasticQuota governs namespace (well formed or
// not), so that messages about pods elsewhere do not speak of quota rules
// that do not apply to them.
func (t *Tracker) Governs(namespace string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.names[namespace]) > 0
}

// Used returns a copy of the namespace's current usage, whether or not the
// namespace has a quota.
func (t *Tracker) Used(namespace string) Resources {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.used[namespace].Clone()
}

// namesLocked returns the sorted names of the quota objects of namespace.
func (t *Tracker) namesLocked(namespace string) []string {
	return slices.Sorted(maps.Keys(t.names[namespace]))
}

// quotaLocked returns the effective quota of namespace. It returns a nil
// quota and an empty problem for an ungoverned namespace, and a nil quota and
// a human-readable problem for a misconfigured one.
func (t *Tracker) quotaLocked(namespace string) (*Quota, string) {
	names := t.namesLocked(namespace)
	switch len(names) {
	case 0:
		return nil, ""
	case 1:
		obj := t.quotas[names[0]]
		if obj.err != nil {
			return nil, fmt.Sprintf("namespace %q is misconfigured: ElasticQuota %q is invalid: %v",
				namespace, names[0], strings.ReplaceAll(obj.err.Error(), "\n", "; "))
		}
		return &obj.quota, ""
	default:
		return nil, duplicateError(namespace, names).Error()
	}
}

// duplicateError explains why a namespace with several quota objects is not
// scheduled, naming every object so that the operator knows what to delete.
func duplicateError(namespace string, names []string) error {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	return fmt.Errorf("namespace %q is misconfigured: it has %d ElasticQuotas (%s) but at most one is allowed; its pods wait until all but one are deleted",
		namespace, len(names), strings.Join(quoted, ", "))
}

// wellFormedLocked returns the effective quota of every namespace that has
// exactly one valid quota object, by namespace. Only those take part in
// lending and borrowing.
func (t *Tracker) wellFormedLocked() map[string]*Quota {
	out := make(map[string]*Quota, len(t.names))
	for ns := range t.names {
		if q, _ := t.quotaLocked(ns); q != nil {
			out[ns] = q
		}
	}
	return out
}

// Misconfigured reports whether namespace has a quota problem (an invalid
// object, or several objects) that only fixing the objects can resolve: no
// preemption helps its pods.
func (t *Tracker) Misconfigured(namespace string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, problem := t.quotaLocked(namespace)
	return problem != ""
}

// HasPodBelow reports whether namespace has a tracked pod with a priority
// lower than priority, i.e. whether ordinary priority preemption within the
// namespace has any candidate at all.
func (t *Tracker) HasPodBelow(namespace string, priority int32) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, p := range t.pods {
		if p.Namespace == namespace && p.Priority < priority {
			return true
		}
	}
	return false
}
