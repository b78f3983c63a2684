package quota

import "time"

// PodUsage is what the quota logic needs to know about a pod: whose quota it
// charges, how much, and how expendable it is when capacity is reclaimed.
// Usage is derived from these records alone, which is what makes it
// recomputable after a restart or a missed event.
type PodUsage struct {
	// UID identifies the pod; records are idempotent by UID.
	UID string
	// Namespace is the namespace whose quota the pod is charged to.
	Namespace string
	// Priority orders victims: lower priorities are preempted first.
	Priority int32
	// StartTime orders victims of equal priority: the most recently started
	// pod has lost the least work and is preempted first.
	StartTime time.Time
	// Resources is the pod's request, with ResourceGPUEquivalent derived
	// (see WithGPUEquivalents) when quotas use it.
	Resources Resources
	// Gang is the key of the pod's pod group, "" if none. Members of one gang
	// in one namespace are preempted all together or not at all, since a
	// partial gang holds resources without making progress.
	Gang string
	// Node is the node the pod is bound or assumed to; informational here,
	// device placement is the adapter's concern.
	Node string
	// Assumed marks a pod reserved by the scheduler but not yet bound. It is
	// charged like a bound pod so that the next scheduling cycle cannot spend
	// the same quota twice.
	Assumed bool
}

// PreemptionKind names why a victim in victimNamespace makes way for a
// preemptor in preemptorNamespace, for metrics: "reclaim" when another
// namespace's borrowed quota is taken back, "priority" within a namespace.
func PreemptionKind(preemptorNamespace, victimNamespace string) string {
	if victimNamespace != preemptorNamespace {
		return "reclaim"
	}
	return "priority"
}
