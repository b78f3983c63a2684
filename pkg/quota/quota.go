package quota

import (
	"errors"
	"fmt"
)

// Quota is one namespace's ElasticQuota: Min is guaranteed to the namespace
// and lent to others while unused, Max is never exceeded, and what lies
// between is borrowed from capacity nobody else is using.
type Quota struct {
	// Namespace is the namespace whose pods the quota governs.
	Namespace string
	// Min is the guaranteed amount per resource; a missing key means 0.
	Min Resources
	// Max is the hard limit per resource; a missing key means unlimited.
	Max Resources
	// Used is the observed usage, as reported in the object's status. The
	// Tracker ignores it, since usage is always recomputed from pods; read
	// the Tracker's view with Tracker.Used or Tracker.Snapshot.
	Used Resources
}

// Validate reports what is wrong with q, naming the field, resource and
// value, so that the adapter can surface it on the object and in pod
// reasons. It rejects an empty namespace, negative amounts in Min or Max,
// and Min above Max for a resource that both name. All problems are
// returned together, in a deterministic order.
func Validate(q Quota) error {
	var errs []error
	if q.Namespace == "" {
		errs = append(errs, errors.New("namespace must not be empty"))
	}
	for _, name := range sortedNames(q.Min) {
		if v := q.Min[name]; v < 0 {
			errs = append(errs, fmt.Errorf("min[%s] = %d must not be negative", name, v))
		}
	}
	for _, name := range sortedNames(q.Max) {
		if v := q.Max[name]; v < 0 {
			errs = append(errs, fmt.Errorf("max[%s] = %d must not be negative", name, v))
		}
	}
	for _, name := range sortedNames(q.Min) {
		lo := q.Min[name]
		if hi, ok := q.Max[name]; ok && lo > hi {
			errs = append(errs, fmt.Errorf("min[%s] = %d must not be greater than max[%s] = %d", name, lo, name, hi))
		}
	}
	return errors.Join(errs...)
}

// governs reports whether q constrains resource name at all: only resources
// named in Min or Max are checked, so that a GPU-only quota does not reject
// pods over CPU it never mentioned.
func (q *Quota) governs(name string) bool {
	_, inMin := q.Min[name]
	_, inMax := q.Max[name]
	return inMin || inMax
}
