package gang

import "time"

// Pod phases, spelled as Kubernetes spells v1.PodPhase so that the adapter
// can copy the phase over unchanged.
const (
	// PodPending: not yet running, bound or not.
	PodPending = "Pending"
	// PodRunning: bound and started.
	PodRunning = "Running"
	// PodSucceeded: finished successfully; the pod still counts as
	// placed, because its group did run.
	PodSucceeded = "Succeeded"
	// PodFailed: finished unsuccessfully; the pod no longer counts
	// towards its group's minimum.
	PodFailed = "Failed"
)

// PodRef is what the gang logic needs to know about a pod. Everything in it
// comes from the API object, which is what makes the Manager rebuildable
// after a restart: replaying AddPod for every pod restores all state except
// reservations, which a restarted scheduler has dropped anyway.
type PodRef struct {
	// UID identifies the pod; every call is idempotent by UID.
	UID string
	// Name is the pod's name, used in the queue order's final tie-break.
	Name string
	// Group is the pod's group, "" for a pod that belongs to none.
	Group GroupKey
	// Created is the pod's creation time.
	Created time.Time
	// Priority is the pod's priority. It orders pods without a known group;
	// members of a known group are ordered by Group.Priority instead.
	Priority int32
	// Node is the node the pod is bound to, "" while it is unbound.
	Node string
	// Phase is the pod's phase (PodPending, PodRunning, PodSucceeded or
	// PodFailed); "" counts as PodPending.
	Phase string
}

// member is a PodRef with the scheduler-side state that the API does not
// show: where the pod is reserved while it waits at Permit, and where it was
// permitted while its binding has not been observed yet.
type member struct {
	ref PodRef
	// waiting is the node the pod is reserved on while it waits at Permit
	// for the rest of its group, "" otherwise.
	waiting string
	// allowed is the node the pod was permitted to bind to, "" otherwise;
	// cleared once the informer shows the binding (ref.Node) or the binding
	// fails (Unreserve).
	allowed string
}

// failed reports whether the pod has failed. A failed pod no longer
// occupies a place and does not count towards its group's minimum; its
// controller usually replaces it with a new pod.
func (m *member) failed() bool { return m.ref.Phase == PodFailed }

// placed reports whether the pod has a place that counts towards its
// group's minimum: bound or permitted, and not failed. A succeeded pod
// counts, because its group did run; this is what keeps a finished group
// from being assembled again.
func (m *member) placed() bool {
	return !m.failed() && (m.ref.Node != "" || m.allowed != "")
}

// pending reports whether the pod still needs a place: neither placed nor
// reserved, and not terminated.
func (m *member) pending() bool {
	return !m.failed() && m.ref.Phase != PodSucceeded && !m.placed() && m.waiting == ""
}
