package gang

import (
	"fmt"
	"slices"
	"time"
)

// Phase is a PodGroup phase. The names are scheduler-plugins' (its older
// API had all of them; v0.34 dropped PreScheduling and Scheduled, see
// V1alpha1).
type Phase string

// The phases, in the order a group normally goes through them.
const (
	// PhasePending: fewer than MinMember pods of the group exist.
	PhasePending Phase = "Pending"
	// PhasePreScheduling: enough pods exist; the group waits for the
	// assembly slot or backs off.
	PhasePreScheduling Phase = "PreScheduling"
	// PhaseScheduling: the group holds the assembly slot, or members
	// wait at Permit.
	PhaseScheduling Phase = "Scheduling"
	// PhaseScheduled: MinMember pods are placed but fewer than MinMember
	// have started.
	PhaseScheduled Phase = "Scheduled"
	// PhaseRunning: MinMember pods are running or have succeeded.
	PhaseRunning Phase = "Running"
	// PhaseFailed: a pod has failed, and failed, running and succeeded
	// pods together reach MinMember, so the group ran and lost a member.
	PhaseFailed Phase = "Failed"
	// PhaseFinished: MinMember pods have succeeded.
	PhaseFinished Phase = "Finished"
)

// V1alpha1 returns the phase as the scheduler-plugins v1alpha1 API of the
// version Tessera builds against spells it: that API has no PreScheduling
// or Scheduled, and its controller reports Scheduling from the moment
// enough pods exist until MinMember are running.
func (p Phase) V1alpha1() string {
	switch p {
	case PhasePreScheduling, PhaseScheduled:
		return string(PhaseScheduling)
	}
	return string(p)
}

// GroupStatus is a group's status as the PodGroup object shows it.
type GroupStatus struct {
	// Phase is derived from the counts below; see Status.
	Phase Phase
	// Scheduled counts members that have been given a node (bound or
	// permitted), whatever their phase since, failed ones excepted.
	Scheduled int
	// Running, Succeeded and Failed count members by pod phase.
	Running, Succeeded, Failed int
	// Waiting counts members reserved and waiting at Permit.
	Waiting int
	// Pods counts the members that exist and have not failed.
	Pods int
	// ScheduleStartTime is when the current or most recent assembly
	// began, zero if none ever did.
	ScheduleStartTime time.Time
	// BackoffUntil is when a backing-off group may try again, zero if it
	// is not backing off.
	BackoffUntil time.Time
	// Message says why the most recent assembly failed, "" if it did not.
	Message string
}

// Status returns a group's status, and false if the group is unknown. The
// phase is the first that applies of: Finished (MinMember succeeded);
// Failed (a member failed, and failed+running+succeeded ≥ MinMember);
// Running (running+succeeded ≥ MinMember); Scheduled (scheduled ≥
// MinMember); Pending (fewer than MinMember pods exist); Scheduling (the
// group holds the slot or has members waiting at Permit); otherwise
// PreScheduling. These are the rules of scheduler-plugins' PodGroup
// controller, with the scheduler's view added for the phases that only the
// scheduler can tell apart. A group whose PodGroup object is not known
// has no status.
func (m *Manager) Status(key GroupKey, now time.Time) (GroupStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[key]
	if g == nil || g.spec == nil {
		return GroupStatus{}, false
	}
	t := g.tally()
	s := GroupStatus{
		Scheduled:         t.placed,
		Running:           t.running,
		Succeeded:         t.succeeded,
		Failed:            t.failed,
		Waiting:           t.waiting,
		Pods:              t.exist,
		ScheduleStartTime: g.started,
		Message:           g.lastFailure,
	}
	if now.Before(g.backoffUntil) {
		s.BackoffUntil = g.backoffUntil
	}
	minMember := g.spec.minMember()
	switch {
	case t.succeeded >= minMember:
		s.Phase = PhaseFinished
	case t.failed > 0 && t.failed+t.running+t.succeeded >= minMember:
		s.Phase = PhaseFailed
	case t.running+t.succeeded >= minMember:
		s.Phase = PhaseRunning
	case t.placed >= minMember:
		s.Phase = PhaseScheduled
	case t.exist < minMember:
		s.Phase = PhasePending
	case m.holder == key || t.waiting > 0:
		s.Phase = PhaseScheduling
	default:
		s.Phase = PhasePreScheduling
	}
	return s, true
}

// recentLimit is how many time-to-schedule observations Stats keeps.
const recentLimit = 64

// counters are the Manager's cumulative counts.
type counters struct {
	assembled, timedOut, rejected, deferred, unreserved, aborted int64
	// recent holds the latest time-to-schedule observations, oldest first.
	recent []time.Duration
}

func (c *counters) observe(d time.Duration) {
	if len(c.recent) == recentLimit {
		c.recent = slices.Delete(c.recent, 0, 1)
	}
	c.recent = append(c.recent, d)
}

// Stats is a snapshot for metrics: gauges computed at the time of the call,
// and counters since the Manager was created. The adapter exports them as
// Prometheus metrics; each failed assembly is counted under exactly one
// cause.
type Stats struct {
	// Groups counts the groups whose PodGroup object is known.
	Groups int
	// Waiting counts groups that need assembly and have MinMember pods but
	// not MinMember placed: waiting for the slot, backing off, or
	// assembling. Groups of one are scheduled like plain pods and never
	// counted.
	Waiting int
	// BackingOff counts the groups backing off now.
	BackingOff int
	// Holder is the group holding the assembly slot, "" if none.
	Holder GroupKey
	// Assembled counts successful assemblies.
	Assembled int64
	// TimedOut counts assemblies that passed their deadline.
	TimedOut int64
	// Rejected counts assemblies ended by Reject: early rejection or a
	// member that found no node.
	Rejected int64
	// Deferred counts assemblies ended by Defer (cluster busy, no failure).
	Deferred int64
	// Unreserved counts assemblies ended because a reserved member failed.
	Unreserved int64
	// Aborted counts assemblies ended because their group or enough of
	// its pods were deleted; these do not back off.
	Aborted int64
	// RecentTimeToSchedule holds the latest time-to-schedule observations,
	// oldest first, at most 64; the same values are reported one by one by
	// Permit for histograms.
	RecentTimeToSchedule []time.Duration
}

// Stats returns the current metrics snapshot.
func (m *Manager) Stats(now time.Time) Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Stats{
		Holder:               m.holder,
		Assembled:            m.stats.assembled,
		TimedOut:             m.stats.timedOut,
		Rejected:             m.stats.rejected,
		Deferred:             m.stats.deferred,
		Unreserved:           m.stats.unreserved,
		Aborted:              m.stats.aborted,
		RecentTimeToSchedule: slices.Clone(m.stats.recent),
	}
	for _, g := range m.groups {
		if g.spec == nil {
			continue
		}
		s.Groups++
		if now.Before(g.backoffUntil) {
			s.BackingOff++
		}
		if t := g.tally(); g.needsAssembly() && t.exist >= g.spec.minMember() {
			s.Waiting++
		}
	}
	return s
}

// String summarises s on one line, for logs and test failures.
func (s Stats) String() string {
	return fmt.Sprintf("groups=%d waiting=%d backingOff=%d holder=%q assembled=%d timedOut=%d rejected=%d unreserved=%d aborted=%d",
		s.Groups, s.Waiting, s.BackingOff, s.Holder, s.Assembled, s.TimedOut, s.Rejected, s.Unreserved, s.Aborted)
}
