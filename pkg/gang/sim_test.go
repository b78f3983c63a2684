package gang

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// The simulation reproduces scheduler-plugins issue 117: 2 nodes of 8 GPUs,
// 60 jobs of 1 to 4 members asking 1 to 8 GPUs each, arriving in random
// order. It drives the Manager exactly as the adapter does, extension point
// by extension point, against a tiny fake cluster, one tick being one
// second.

const (
	simNodes         = 2
	simGPUsPerNode   = 8
	simJobs          = 60
	simRunTicks      = 8    // a job runs this long once all its members are bound
	simCyclesPerTick = 3    // scheduling cycles per tick
	simFlushTicks    = 30   // the queue's periodic flush of parked pods
	simMaxTicks      = 5000 // a run that has not finished by then is stuck
)

type simJob struct {
	key      GroupKey
	priority int32
	members  int
	gpus     int // per member
	arrive   int // tick
	pods     []*simPod
	boundAt  int // tick all members were bound, -1 before
	done     bool
}

type simState int

const (
	simPending simState = iota
	simWaiting          // reserved, waiting at Permit
	simBound
	simDone
)

type simPod struct {
	uid   string
	job   *simJob
	index int
	state simState
	node  int // -1 while it holds no GPUs
	// blocked parks a pod turned away by TryAssemble until the slot is
	// freed; parkedUntil parks it until that tick (the queue's own pod
	// back-off); unfit parks a pod that fit no node until GPUs are freed
	// again, freed epoch being s.freed when it failed (the queue's
	// requeueing on pod deletion).
	blocked     bool
	parkedUntil int
	unfit       bool
	freedEpoch  int
	added       bool
}

// newSimJobs returns the jobs of one run: sizes drawn so that each job fits the
// empty cluster alone (every member on one node), arrival order random,
// three jobs arriving per tick, one job in five of a higher priority.
func newSimJobs(seed uint64) []*simJob {
	rng := rand.New(rand.NewPCG(seed, 117))
	jobs := make([]*simJob, simJobs)
	for i := range jobs {
		gpus := 1 + rng.IntN(simGPUsPerNode)
		maxMembers := min(4, simNodes*(simGPUsPerNode/gpus))
		j := &simJob{
			key:     NewGroupKey("team", fmt.Sprintf("job-%02d", i)),
			members: 1 + rng.IntN(maxMembers),
			gpus:    gpus,
			boundAt: -1,
		}
		if rng.IntN(5) == 0 {
			j.priority = 10
		}
		for k := range j.members {
			j.pods = append(j.pods, &simPod{uid: fmt.Sprintf("%s-%d", j.key.Name(), k), job: j, index: k, node: -1})
		}
		jobs[i] = j
	}
	for i, p := range rng.Perm(simJobs) {
		jobs[p].arrive = i / 3
	}
	return jobs
}

type sim struct {
	t    *testing.T
	m    *Manager
	jobs []*simJob
	pods map[string]*simPod
	free [simNodes]int
	// freed counts the events that freed GPUs.
	freed  int
	tick   int
	faults *rand.Rand // nil: no faults
	// maxWaitingGroups is the most groups seen holding reservations at
	// once.
	maxWaitingGroups int
}

func (s *sim) now() time.Time { return at(time.Duration(s.tick) * time.Second) }

func nodeName(n int) string { return fmt.Sprintf("node-%d", n) }

func (p *simPod) ref() PodRef {
	r := PodRef{
		UID: p.uid, Name: p.uid, Group: p.job.key, Priority: p.job.priority,
		Created: at(time.Duration(p.job.arrive+p.index%2)*time.Second + time.Duration(p.index)),
		Phase:   PodPending,
	}
	switch p.state {
	case simBound:
		r.Node, r.Phase = nodeName(p.node), PodRunning
	case simDone:
		r.Node, r.Phase = nodeName(p.node), PodSucceeded
	}
	return r
}

// run plays ticks until every job is done, checking the invariants after
// every scheduling cycle.
func (s *sim) run() {
	for s.tick = 0; s.tick < simMaxTicks; s.tick++ {
		if s.step() {
			return
		}
	}
	var stuck []string
	for _, j := range s.jobs {
		if !j.done {
			st, _ := s.m.Status(j.key, s.now())
			stuck = append(stuck, fmt.Sprintf("%s %dx%d %+v", j.key, j.members, j.gpus, st))
		}
	}
	s.t.Fatalf("not every job completed in %d ticks; free %v; %v; stuck:\n%s", simMaxTicks, s.free, s.m.Stats(s.now()), strings.Join(stuck, "\n"))
}

// step plays one tick and reports whether every job is done.
func (s *sim) step() bool {
	now := s.now()
	allDone := true
	for _, j := range s.jobs {
		// Finished jobs free their GPUs; the informer reports Succeeded.
		if !j.done && j.boundAt >= 0 && s.tick >= j.boundAt+simRunTicks {
			for _, p := range j.pods {
				s.free[p.node] += j.gpus
				p.state = simDone
				s.m.UpdatePod(p.ref())
			}
			j.done = true
			s.freed++
		}
		allDone = allDone && j.done
		// Arrivals: the PodGroup first, then the members over two ticks,
		// so that PreEnqueue sees incomplete groups.
		if j.arrive == s.tick {
			s.m.SetGroup(Group{Key: j.key, MinMember: j.members, Priority: j.priority, Created: at(time.Duration(j.arrive) * time.Second)})
		}
		for _, p := range j.pods {
			if !p.added && s.tick >= j.arrive+p.index%2 {
				s.m.AddPod(p.ref())
				p.added = true
			}
		}
	}
	if allDone {
		return true
	}
	if s.tick%simFlushTicks == 0 {
		for _, p := range s.pods {
			p.blocked, p.unfit = false, false
		}
	}
	// The adapter's timer at the holder's deadline.
	s.reject(s.m.Expire(now))
	s.check()
	for range simCyclesPerTick {
		p := s.pop()
		if p == nil {
			break
		}
		s.schedule(p)
		s.activate()
		s.check()
	}
	return false
}

// pop returns the first pod of the active queue: pending, not parked,
// admitted by PreEnqueue, first by Less.
func (s *sim) pop() *simPod {
	var best *simPod
	for _, j := range s.jobs {
		for _, p := range j.pods {
			if !p.added || p.state != simPending || p.blocked || s.tick < p.parkedUntil || (p.unfit && p.freedEpoch == s.freed) {
				continue
			}
			if !s.m.PreEnqueue(p.uid, s.now()).Allow {
				continue
			}
			if best == nil || s.m.Less(p.ref(), best.ref()) {
				best = p
			}
		}
	}
	return best
}

// schedule runs one scheduling cycle for p.
func (s *sim) schedule(p *simPod) {
	now, j := s.now(), p.job
	// PreFilter.
	s.reject(s.m.Expire(now))
	a := s.m.TryAssemble(p.uid, now)
	if !a.OK {
		p.blocked = strings.HasPrefix(a.Reason, "waiting for pod group")
		return
	}
	if a.Started {
		if !s.fitsAll(j) {
			s.reject(s.m.Reject(j.key, now, "does not fit"))
			return
		}
		// The group's other members may be parked since an earlier
		// refusal: the adapter activates them.
		for _, q := range j.pods {
			q.blocked = false
		}
	}
	fault := -1
	if s.faults != nil {
		fault = s.faults.IntN(100)
	}
	switch {
	case fault >= 0 && fault < 3:
		// The pod is stuck in the queue's own back-off for longer than
		// the group's timeout: only Expire frees the slot.
		p.parkedUntil = s.tick + 15
		return
	case fault >= 3 && fault < 6:
		// Filter finds no node (a race with a pod outside the
		// simulation) and PostFilter cannot help: the group is rejected.
		s.reject(s.m.Reject(j.key, now, "no node"))
		return
	}
	// Filter and Score: best fit.
	node := -1
	for n := range s.free {
		if s.free[n] >= j.gpus && (node < 0 || s.free[n] < s.free[node]) {
			node = n
		}
	}
	if node < 0 {
		// PostFilter: no preemption in this cluster.
		if h, _, _ := s.m.Holder(); h == j.key {
			s.reject(s.m.Reject(j.key, now, "no node"))
		}
		p.unfit, p.freedEpoch = true, s.freed
		return
	}
	// Reserve.
	s.free[node] -= j.gpus
	p.node, p.state = node, simWaiting
	if fault >= 6 && fault < 9 {
		// A later Reserve plugin fails: the framework unreserves.
		s.reject([]string{p.uid})
		return
	}
	// Permit.
	r := s.m.Permit(p.uid, nodeName(node), now)
	switch {
	case r.Allow:
		s.bind(p)
		for _, uid := range r.AllowUIDs {
			s.bind(s.pods[uid])
		}
	case r.Wait > 0:
	default:
		s.reject(append(r.RejectUIDs, p.uid))
	}
}

// fitsAll is the adapter's early check for j.
func (s *sim) fitsAll(j *simJob) bool {
	pending, need := s.m.Pending(j.key)
	members := make([]Member, len(pending))
	for i := range members {
		members[i].Size = int64(j.gpus)
	}
	nodes := make([]NodeCap, simNodes)
	for n := range nodes {
		nodes[n].Free = int64(s.free[n])
	}
	free := s.free
	_, ok := FitsAll(members, need, nodes, Topology{},
		func(_, n int) bool { return free[n] >= j.gpus },
		func(_, n int) func() { free[n] -= j.gpus; return func() { free[n] += j.gpus } })
	if free != s.free {
		s.t.Fatalf("FitsAll left assumptions behind")
	}
	return ok
}

// bind binds p where it is reserved; the informer reports it.
func (s *sim) bind(p *simPod) {
	p.state = simBound
	s.m.UpdatePod(p.ref())
	j := p.job
	for _, q := range j.pods {
		if q.state != simBound {
			return
		}
	}
	j.boundAt = s.tick
}

// reject rejects reserved pods as the framework does: they release their
// GPUs and return to the queue, and Unreserve is called for each; what
// Unreserve returns is rejected in turn.
func (s *sim) reject(uids []string) {
	for len(uids) > 0 {
		uid := uids[0]
		uids = uids[1:]
		p := s.pods[uid]
		if p.state != simWaiting {
			s.t.Fatalf("tick %d: rejecting %s, which is not reserved (state %d)", s.tick, uid, p.state)
		}
		s.free[p.node] += p.job.gpus
		p.node, p.state = -1, simPending
		s.freed++
		uids = append(uids, s.m.Unreserve(uid, s.now())...)
	}
}

// activate moves the pods of blocked groups back to the active queue
// whenever the slot is free, as the adapter does.
func (s *sim) activate() {
	if _, _, held := s.m.Holder(); held {
		return
	}
	for _, key := range s.m.Blocked() {
		for _, p := range s.pods {
			if p.job.key == key {
				p.blocked = false
			}
		}
	}
}

// check fails the test unless the invariants hold: no partial gang is
// bound, at most one group holds reservations and it holds the slot, and
// GPUs are conserved.
func (s *sim) check() {
	s.t.Helper()
	var used [simNodes]int
	waitingGroups := map[GroupKey]bool{}
	for _, j := range s.jobs {
		bound := 0
		for _, p := range j.pods {
			switch p.state {
			case simBound:
				bound++
				used[p.node] += j.gpus
			case simWaiting:
				waitingGroups[j.key] = true
				used[p.node] += j.gpus
			}
		}
		if bound > 0 && bound < j.members {
			s.t.Fatalf("tick %d: partial gang: %d of %d members of %s bound", s.tick, bound, j.members, j.key)
		}
	}
	if len(waitingGroups) > 1 {
		s.t.Fatalf("tick %d: %d groups hold reservations at once: %v", s.tick, len(waitingGroups), waitingGroups)
	}
	for key := range waitingGroups {
		if h, _, _ := s.m.Holder(); h != key {
			s.t.Fatalf("tick %d: %s holds reservations without the slot (holder %q)", s.tick, key, h)
		}
	}
	s.maxWaitingGroups = max(s.maxWaitingGroups, len(waitingGroups))
	for n := range used {
		if used[n]+s.free[n] != simGPUsPerNode || s.free[n] < 0 {
			s.t.Fatalf("tick %d: node %d: %d GPUs used, %d free", s.tick, n, used[n], s.free[n])
		}
	}
}

func newSim(t *testing.T, seed uint64, faults bool) *sim {
	s := &sim{t: t, m: NewManager(testConfig), jobs: newSimJobs(seed), pods: map[string]*simPod{}}
	for n := range s.free {
		s.free[n] = simGPUsPerNode
	}
	for _, j := range s.jobs {
		for _, p := range j.pods {
			s.pods[p.uid] = p
		}
	}
	if faults {
		s.faults = rand.New(rand.NewPCG(seed, 1))
	}
	return s
}

// TestIssue117NoDeadlock runs the scenario of scheduler-plugins issue 117
// with several seeds, with and without injected faults (members stuck past
// the timeout, filters and reserves failing), and checks that every job
// completes, that no partial gang is ever bound and that no two groups ever
// hold reservations at once.
func TestIssue117NoDeadlock(t *testing.T) {
	tests := []struct {
		seed   uint64
		faults bool
	}{
		{seed: 1}, {seed: 2}, {seed: 3}, {seed: 4},
		{seed: 1, faults: true}, {seed: 2, faults: true}, {seed: 3, faults: true}, {seed: 4, faults: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("seed=%d/faults=%v", tt.seed, tt.faults), func(t *testing.T) {
			s := newSim(t, tt.seed, tt.faults)
			s.run()
			st := s.m.Stats(s.now())
			t.Logf("all %d jobs done at tick %d; %v", simJobs, s.tick, st)
			if st.Assembled == 0 || s.maxWaitingGroups != 1 {
				t.Errorf("the simulation did not exercise assembly: %v, max waiting groups %d", st, s.maxWaitingGroups)
			}
			if tt.faults && (st.TimedOut == 0 || st.Rejected == 0 || st.Unreserved == 0) {
				t.Errorf("faults did not exercise every failure path: %v", st)
			}
			if !tt.faults && (st.TimedOut != 0 || st.Unreserved != 0) {
				t.Errorf("without faults an assembly that passed the early check failed: %v", st)
			}
			if _, _, held := s.m.Holder(); held {
				t.Error("slot still held at the end")
			}
		})
	}
}

// TestIssue117NaiveDeadlocks is the control experiment: the same jobs,
// scheduled by a gang scheduler without the assembly slot and the early
// check (members reserve wherever they fit and wait for their siblings with
// no timeout, as in issue 117), get stuck. It shows that the scenario of
// TestIssue117NoDeadlock is a real deadlock that the Manager avoids.
func TestIssue117NaiveDeadlocks(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			jobs := newSimJobs(seed)
			var queue []*simPod
			for _, j := range jobs {
				queue = append(queue, j.pods...)
			}
			// The naive queue orders by priority then arrival, but not by
			// group: members of different groups interleave.
			slices.SortStableFunc(queue, func(a, b *simPod) int {
				if a.job.priority != b.job.priority {
					return int(b.job.priority - a.job.priority)
				}
				return a.job.arrive + a.index%2 - (b.job.arrive + b.index%2)
			})
			free := [simNodes]int{simGPUsPerNode, simGPUsPerNode}
			for tick := 0; tick < simMaxTicks; tick++ {
				progress, allDone := false, true
				for _, j := range jobs {
					if !j.done && j.boundAt >= 0 && tick >= j.boundAt+simRunTicks {
						for _, p := range j.pods {
							free[p.node] += j.gpus
						}
						j.done, progress = true, true
					}
					allDone = allDone && j.done
				}
				if allDone {
					t.Fatalf("the naive scheduler completed every job at tick %d; the scenario shows no deadlock", tick)
				}
				for _, p := range queue {
					j := p.job
					if p.node >= 0 || tick < j.arrive+p.index%2 {
						continue
					}
					for n := range free {
						if free[n] >= j.gpus {
							free[n] -= j.gpus
							p.node, progress = n, true
							break
						}
					}
					if p.node >= 0 && !slices.ContainsFunc(j.pods, func(q *simPod) bool { return q.node < 0 }) {
						j.boundAt = tick
					}
				}
				arriving := slices.ContainsFunc(jobs, func(j *simJob) bool { return j.arrive+1 >= tick })
				running := slices.ContainsFunc(jobs, func(j *simJob) bool { return j.boundAt >= 0 && !j.done })
				if !progress && !arriving && !running {
					// Nothing runs, nothing can be placed and nothing
					// will arrive: every reservation waits forever.
					waiting := 0
					for _, p := range queue {
						if p.node >= 0 && p.job.boundAt < 0 {
							waiting++
						}
					}
					t.Logf("deadlocked at tick %d: %d pods wait at Permit, free GPUs %v", tick, waiting, free)
					return
				}
			}
			t.Fatal("the naive scheduler neither finished nor deadlocked")
		})
	}
}
