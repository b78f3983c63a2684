// Package quota holds the pure logic of Tessera's ElasticQuota plugin:
// per-namespace min/max quotas over GPU clusters, with borrowing of unused
// guarantees and reclaim of borrowed capacity.
//
// The package depends on the standard library only. The scheduler framework
// adapter converts v1.ResourceList values into Resources, feeds quota objects
// and pods into a Tracker, and asks it for admission decisions (PreFilter) and
// preemption victims (PostFilter). Keeping the rules here, away from the
// framework, lets them be tested exhaustively and quickly.
//
// # Resources and governed resources
//
// Amounts are int64 in the resource's smallest unit (CPU in millicores,
// memory in bytes, device counts, GPU shares in milli). A quota governs a
// resource only if the resource is named in its Min or its Max: a missing key
// in Min means nothing is guaranteed (min 0), a missing key in Max means no
// upper limit, and a resource named in neither is not checked by this
// namespace's quota at all (node fit still applies).
//
// The derived resource tessera.dev/gpu counts GPU equivalents in milli so a
// team can be given "4 GPUs" however it slices them (whole GPUs, MIG
// instances, or fractional shares); see WithGPUEquivalents and gpu.EquivalentMilli.
//
// # Admission
//
// For a namespace n with a quota, and every resource r that the quota governs
// and the request asks for, let u be n's usage, m its min (0 if unset), M its
// max (unbounded if unset) and new = u + request. Over the other well-formed
// quotas q that govern r:
//
//	U = Σ max(0, m_q - u_q)          guaranteed to others but unused (lendable)
//	B = Σ max(0, u_q - m_q)          already borrowed by others
//	G = max(0, C - Σ_all m_q)        capacity guaranteed to nobody
//
// where C is the cluster capacity for r given to SetClusterCapacity (0 when
// unknown) and Σ_all runs over every well-formed quota, n included. Then:
//
//  1. new > M is rejected; reclaim cannot help, since max is never exceeded.
//  2. new > m borrows new - m, which is admitted only if
//     new - m ≤ U + G - B. Otherwise it is rejected and not reclaimable:
//     a borrower never reclaims from other borrowers.
//  3. new ≤ m is within the guarantee. It is admitted unless others borrow
//     more than what is still lendable once n takes its share, that is
//     unless B > U + (m - new) + G. Then the rejection is reclaimable:
//     preempting borrowers gives n its guarantee back.
//
// Rules 2 and 3 are one invariant seen from two sides: after every admission
// Σ_q max(0, u_q - m_q) ≤ Σ_q max(0, m_q - u_q) + G over all quotas. When
// capacity covers all guarantees (C ≥ Σ m_q) this reduces to Σ u_q ≤ C.
// Checking the invariant per namespace, rather than comparing Σ used +
// request with Σ min across the cluster, is what keeps a namespace under its
// min admissible by reclaim while others borrow; scheduler-plugins'
// CapacityScheduling lost that property (kubernetes-sigs/scheduler-plugins
// issue 683).
//
// # Reclaim
//
// Tracker.SelectVictims chooses pods to preempt: lower-priority pods of the
// preemptor's own namespace, and pods of other namespaces that borrow a
// resource the preemptor would get within its min. A namespace is never
// preempted below its min, gangs are evicted all or nothing, and the victim
// set is grown greedily then pruned (reprieve) through a caller-supplied fits
// callback, so device placement stays the caller's concern.
//
// # Misconfiguration
//
// An invalid quota object, or a second quota object for one namespace, makes
// the namespace misconfigured: its pods are rejected with a reason naming the
// objects until the configuration is fixed, rather than being scheduled
// unchecked, and its guarantees stop counting for anyone else.
package quota
