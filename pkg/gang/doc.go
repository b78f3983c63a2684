// Package gang holds the pure logic of Tessera's Gang plugin: co-scheduling
// of pod groups (gangs), all or nothing, bounded in time and free of
// deadlocks between groups.
//
// The package depends on the standard library only and reads no clock:
// every decision that depends on time takes now as an argument, so the
// rules are tested exhaustively, deterministically and quickly, away from
// the framework. The framework adapter (pkg/plugins/gang) converts PodGroup
// objects into Groups and pods into PodRefs, feeds them into a Manager from
// its informer handlers, and turns the Manager's answers into framework
// statuses, waiting-pod calls and metrics.
//
// # Why gangs deadlock, and the assembly slot
//
// A gang scheduler reserves a place for each member as it is scheduled and
// holds members at Permit until MinMember have a place. Two groups that each
// fit alone but not together can then each reserve part of the cluster and
// wait for the other forever: with 2 nodes of 8 GPUs and 60 jobs of 1-8
// GPUs, scheduler-plugins' coscheduling stalled with everything at Permit
// (kubernetes-sigs/scheduler-plugins issue 117). Timeouts alone can turn
// the deadlock into a livelock: both groups time out, retry, and collide
// again.
//
// The Manager therefore lets at most one group hold reservations at a time.
// A group takes the assembly slot when one of its members reaches PreFilter
// while the slot is free (TryAssemble); members of other groups wait at
// PreEnqueue or PreFilter, holding nothing. The slot is freed when the holder has
// MinMember members placed or reserved (Permit allows them all), when it
// times out (Expire), when a member fails after Reserve (Unreserve), when
// the adapter finds it cannot fit (Reject), or when it is deleted. A holder
// that fails backs off exponentially (Config.Backoff), so it does not take
// the slot straight back from groups that might fit. Which group takes the
// slot next is decided by the queue order (Less): higher priority, then
// older group, with each group's members contiguous. A holder is never
// preempted by a higher-priority group mid-assembly, but its assembly is
// bounded by its timeout, so the higher-priority group waits at most that
// long.
//
// The slot is global: the cluster is one scheduling domain. Groups in
// disjoint node pools could assemble in parallel, but an assembly only takes
// MinMember scheduling cycles, so serialising them costs little, and a
// global slot needs no knowledge of which groups could conflict.
//
// # The adapter, extension point by extension point
//
//   - Informer handlers: SetGroup/DeleteGroup for PodGroups, AddPod/
//     UpdatePod/DeletePod for pods. All are idempotent by key or UID, so
//     the Manager is rebuilt from API objects alone after a restart. UIDs
//     returned by DeleteGroup and DeletePod are waiting pods to reject.
//   - PreEnqueue: AddPod (idempotent), then PreEnqueue. A refusal gates
//     the pod with Decision.Reason; RetryAfter says when a back-off ends,
//     so the adapter can activate the pod then. Members of groups waiting
//     for the slot are gated here too, so they cost no scheduling cycle.
//   - QueueSort: Less.
//   - PreFilter: Expire(now) first, rejecting the UIDs it returns; then
//     TryAssemble. If refused, return Unschedulable with the reason. If
//     Started, run the early check for the whole group before anything is
//     reserved: CheckMinResources, then FitsAll over Pending's members with
//     the adapter's device-level fit and quota; if it fails, call Reject
//     (it can never fit) or Defer (it fits empty nodes: it waits for room)
//     and return Unschedulable, so a hopeless group costs one check. If it
//     passes, activate the group's other pending members, which may be
//     parked in the unschedulable pool since an earlier refusal.
//   - Filter and Score: nothing gang-specific (Topology is honoured by the
//     adapter's filter and by FitsAll).
//   - Reserve: nothing; Unreserve: call Unreserve and reject the UIDs it
//     returns through the framework's waiting pods.
//   - Permit: call Permit. Allow: return Success and allow every
//     AllowUIDs pod; observe TimeToSchedule if Assembled. Wait: return
//     Wait with Wait as the timeout. Otherwise reject, and reject the
//     RejectUIDs pods too.
//   - PostFilter: preemption by a group is whole. For a member whose
//     assembly found the group short of room, or that found no node during
//     its group's assembly, the adapter plans victims for all pending
//     members at once (FitsAll with the candidates gone, and the quota for
//     the group's summed request), evicts them together, and calls Defer so
//     that the members wait, holding nothing, until the victims are gone.
//     If no victim set lets the whole group fit, nothing is evicted. A
//     member never falls through to per-pod preemption. Victims that belong
//     to other groups are taken whole (ExpandVictims, or the quota
//     package's gang units).
//   - After any call that may free the slot (Permit, Expire, Unreserve,
//     Reject, DeleteGroup, DeletePod), if Holder reports it free, activate
//     the pending pods of the groups listed by Blocked; keep a timer at
//     Holder's deadline that calls Expire.
//   - Whenever room may have appeared (a bound pod was deleted or
//     finished, a node was added or grew), call RoomChanged and activate
//     the pending pods of the groups it lists, bypassing the scheduler's
//     per-pod back-off: a group waiting for room then tries within a
//     cycle, so two groups that fit run side by side.
//   - Status and Stats feed the PodGroup status and the metrics
//     (time-to-schedule, groups waiting, timeouts).
//
// # All or nothing
//
// A member passes Permit only together with enough others to reach
// MinMember, so no member binds while the group lacks a place. When an
// assembly fails, every reservation of the group is released at once. The
// one exception is a binding that fails after Permit allowed the group:
// the siblings are already binding and cannot be recalled, so the failed
// pod simply returns to the queue and its group assembles again with the
// bound siblings counted (see Unreserve).
package gang
