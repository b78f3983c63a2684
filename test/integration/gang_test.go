package integration

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/tessera-sched/tessera/pkg/localcluster"
)

func createPodGroup(t *testing.T, ns, name string, minMember int32, timeout int32, annotations map[string]string) {
	t.Helper()
	pg := &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember, ScheduleTimeoutSeconds: &timeout},
	}
	if _, err := versioned.NewForConfigOrDie(jsonConfig()).SchedulingV1alpha1().PodGroups(ns).Create(context.Background(), pg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createMember(t *testing.T, ns, group, name string, gpus int64) {
	t.Helper()
	createPod(t, ns, podSpec{name: name, schedulerName: "tessera-scheduler", gpus: gpus, labels: map[string]string{schedv1alpha1.PodGroupLabel: group}})
}

// gangWatch records, per pod group, when each member was bound, and flags
// any group that stays partly bound (some but fewer than minMember members)
// for longer than binding a released group takes.
type gangWatch struct {
	mu        sync.Mutex
	minMember map[string]int
	bound     map[string]map[string]time.Time
	stop      func()
}

func watchGangs(t *testing.T, ns string, minMember map[string]int) *gangWatch {
	t.Helper()
	g := &gangWatch{minMember: minMember, bound: map[string]map[string]time.Time{}}
	g.stop = watchBindings(t, ns, func(pod *v1.Pod) {
		group := pod.Labels[schedv1alpha1.PodGroupLabel]
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.bound[group] == nil {
			g.bound[group] = map[string]time.Time{}
		}
		if _, seen := g.bound[group][pod.Name]; !seen {
			g.bound[group][pod.Name] = time.Now()
		}
	})
	return g
}

// partial returns the groups that have been partly bound for longer than
// grace.
func (g *gangWatch) partial(grace time.Duration) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for group, members := range g.bound {
		if len(members) >= g.minMember[group] {
			continue
		}
		var first time.Time
		for _, at := range members {
			if first.IsZero() || at.Before(first) {
				first = at
			}
		}
		if time.Since(first) > grace {
			out = append(out, fmt.Sprintf("%s: %d of %d bound for %v", group, len(members), g.minMember[group], time.Since(first).Round(time.Second)))
		}
	}
	return out
}

func (g *gangWatch) complete(group string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.bound[group]) >= g.minMember[group]
}

// waitReason waits until the pod's PodScheduled=False message contains
// want (the reason changes as a group forms) and returns "" then, or the
// last message seen.
// waitReason waits until the pod's PodScheduled=False message contains
// want; it returns "" when it does and the last message when it never did.
func waitReason(t *testing.T, ns, name, want string) string {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		last = waitUnschedulable(t, ns, name, 30*time.Second).Message
		return strings.Contains(last, want), nil
	})
	if err != nil {
		return last
	}
	return ""
}

// TestGangBindsTogether: no member of a group of 8 binds while the group
// has 7 pods; once the 8th exists all 8 bind, together.
func TestGangBindsTogether(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "gang-node-1", cpu: "64", memory: "256Gi", gpus: 8}, nodeSpec{name: "gang-node-2", cpu: "64", memory: "256Gi", gpus: 8})
	ns := newNamespace(t)
	createPodGroup(t, ns, "ddp", 8, 30, nil)
	startScheduler(t, cp.Config, schedulerConfig(t))
	gw := watchGangs(t, ns, map[string]int{"ddp": 8})
	defer gw.stop()

	for i := 0; i < 7; i++ {
		createMember(t, ns, "ddp", fmt.Sprintf("ddp-%d", i), 2)
	}
	// The reason on the pod follows the group: it ends at 7 of 8.
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		cond := waitUnschedulable(t, ns, "ddp-0", 30*time.Second)
		last = cond.Reason + ": " + cond.Message
		return cond.Reason == "WaitingForPodGroup" && strings.Contains(cond.Message, "7 of 8"), nil
	})
	if err != nil {
		t.Errorf("waiting reason %q does not say how many members exist", last)
	}
	if n := boundIn(t, ns); n != 0 {
		t.Fatalf("%d members bound while the group was incomplete", n)
	}
	createMember(t, ns, "ddp", "ddp-7", 2)
	for i := 0; i < 8; i++ {
		waitBound(t, ns, fmt.Sprintf("ddp-%d", i), 60*time.Second)
	}
	if p := gw.partial(5 * time.Second); len(p) > 0 {
		t.Errorf("partial gang: %v", p)
	}
}

// TestGangThatCannotFitBindsNothing: a group whose members cannot all be
// placed binds none of them, holds nothing (a plain pod that needs the
// whole node still binds), and says why.
func TestGangThatCannotFitBindsNothing(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "nofit-node-1", cpu: "64", memory: "256Gi", gpus: 8}, nodeSpec{name: "nofit-node-2", cpu: "64", memory: "256Gi", gpus: 8})
	ns := newNamespace(t)
	createPodGroup(t, ns, "big", 3, 10, nil)
	startScheduler(t, cp.Config, schedulerConfig(t))
	for i := 0; i < 3; i++ {
		createMember(t, ns, "big", fmt.Sprintf("big-%d", i), 8)
	}
	if msg := waitReason(t, ns, "big-0", "cannot be placed whole"); msg != "" {
		t.Errorf("reason %q does not say the group cannot be placed whole", msg)
	}
	createPod(t, ns, podSpec{name: "plain", schedulerName: "tessera-scheduler", gpus: 8})
	waitBound(t, ns, "plain", 30*time.Second)
	time.Sleep(2 * time.Second)
	for i := 0; i < 3; i++ {
		p, err := cp.Client.CoreV1().Pods(ns).Get(context.Background(), fmt.Sprintf("big-%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			t.Errorf("member %s of a hopeless group was bound", p.Name)
		}
	}
}

// TestGangTopologyRequiredWaits: a group that requires one rack waits
// rather than splitting across racks.
func TestGangTopologyRequiredWaits(t *testing.T) {
	installCRDs(t)
	createNodes(t,
		nodeSpec{name: "rack-a-node", cpu: "64", memory: "256Gi", gpus: 8, labels: map[string]string{"topology.example.com/rack": "a"}},
		nodeSpec{name: "rack-b-node", cpu: "64", memory: "256Gi", gpus: 8, labels: map[string]string{"topology.example.com/rack": "b"}})
	ns := newNamespace(t)
	createPodGroup(t, ns, "local", 2, 10, map[string]string{"tessera.dev/topology-key": "topology.example.com/rack", "tessera.dev/topology": "required"})
	startScheduler(t, cp.Config, schedulerConfig(t))
	createMember(t, ns, "local", "local-0", 6)
	createMember(t, ns, "local", "local-1", 6)
	if msg := waitReason(t, ns, "local-0", "topology.example.com/rack"); msg != "" {
		t.Errorf("reason %q does not name the topology", msg)
	}
	if n := boundIn(t, ns); n != 0 {
		t.Errorf("%d members bound across racks", n)
	}
}

// TestGangIssue117: scheduler-plugins issue 117's scenario — 2 nodes x 8
// GPUs and 60 jobs of 1-8 GPUs (1-4 members each) submitted at once, which
// left everything stuck at Permit there. Jobs finish a moment after they
// are fully bound (their pods are deleted), so the next ones follow. Every
// job must complete, and no group may stay partly bound.
// jobDeadline bounds TestGangIssue117; the scenario completes in well under
// a minute when nothing is stuck.
var jobDeadline = 3 * time.Minute

func TestGangIssue117(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "i117-node-1", cpu: "64", memory: "256Gi", gpus: 8}, nodeSpec{name: "i117-node-2", cpu: "64", memory: "256Gi", gpus: 8})
	ns := newNamespace(t)
	startScheduler(t, cp.Config, schedulerConfig(t))
	rng := rand.New(rand.NewSource(117))
	type job struct {
		name    string
		members int
		gpus    int64
	}
	var jobs []job
	minMember := map[string]int{}
	for i := 0; i < 60; i++ {
		j := job{name: fmt.Sprintf("job-%02d", i), members: 1 + rng.Intn(4), gpus: []int64{1, 2, 4, 8}[rng.Intn(4)]}
		jobs = append(jobs, j)
		minMember[j.name] = j.members
		createPodGroup(t, ns, j.name, int32(j.members), 20, nil)
	}
	gw := watchGangs(t, ns, minMember)
	defer gw.stop()
	for _, j := range jobs {
		for m := 0; m < j.members; m++ {
			createMember(t, ns, j.name, fmt.Sprintf("%s-%d", j.name, m), j.gpus)
		}
	}
	finished := map[string]bool{}
	deadline := time.Now().Add(jobDeadline)
	for len(finished) < len(jobs) && time.Now().Before(deadline) {
		for _, j := range jobs {
			if finished[j.name] || !gw.complete(j.name) {
				continue
			}
			// The job runs briefly, then completes.
			finished[j.name] = true
			for m := 0; m < j.members; m++ {
				_ = cp.Client.CoreV1().Pods(ns).Delete(context.Background(), fmt.Sprintf("%s-%d", j.name, m), metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
			}
		}
		if p := gw.partial(5 * time.Second); len(p) > 0 {
			pods, _ := cp.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
			for _, pod := range pods.Items {
				group := pod.Labels[schedv1alpha1.PodGroupLabel]
				if !strings.HasPrefix(p[0], group+":") {
					continue
				}
				for _, c := range pod.Status.Conditions {
					if c.Type == v1.PodScheduled {
						t.Logf("%s node=%q %s %s: %s", pod.Name, pod.Spec.NodeName, c.Status, c.Reason, c.Message)
					}
				}
			}
			t.Fatalf("partial gang: %v", p)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(finished) < len(jobs) {
		var stuck []string
		for _, j := range jobs {
			if !finished[j.name] {
				stuck = append(stuck, j.name)
			}
		}
		pods, _ := cp.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == v1.PodScheduled {
					t.Logf("%s node=%q %s: %s", p.Name, p.Spec.NodeName, c.Reason, c.Message)
				}
			}
		}
		t.Fatalf("%d of %d jobs completed in %v; stuck: %v", len(finished), len(jobs), jobDeadline, stuck)
	}
}

// TestGangsRunSideBySide: 2 nodes x 8 GPUs and twelve pod groups of 2
// members x 4 GPUs, created interleaved (every group's first member, then
// every second member), as a job controller burst does. Any two groups fit
// the cluster together, so two must run at any time while groups wait (a
// one-second grace covers a finished group's replacement), and all twelve,
// each running for hold, finish in about 6 x hold, not 12 x: the
// one-assembly-at-a-time rule that prevents #117 must not serialise groups
// that fit together.
func TestGangsRunSideBySide(t *testing.T) {
	installCRDs(t)
	createNodes(t,
		nodeSpec{name: "side-node-1", cpu: "64", memory: "256Gi", gpus: 8, labels: map[string]string{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
		nodeSpec{name: "side-node-2", cpu: "64", memory: "256Gi", gpus: 8, labels: map[string]string{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}})
	ns := newNamespace(t)
	const groups, hold = 12, 3 * time.Second
	pgClient := versioned.NewForConfigOrDie(jsonConfig())
	minMember := map[string]int{}
	for g := 0; g < groups; g++ {
		name := fmt.Sprintf("g%02d", g)
		minMember[name] = 2
		createPodGroup(t, ns, name, 2, 60, nil)
	}
	startScheduler(t, cp.Config, schedulerConfig(t))
	// Pods start and stop as on real nodes: Running once bound, Terminating
	// when deleted until the kubelet has stopped them.
	kubelets, stopKubelets := context.WithCancel(context.Background())
	defer stopKubelets()
	go localcluster.SimulateKubelets(kubelets, cp.Client)
	gw := watchGangs(t, ns, minMember)
	defer gw.stop()
	start := time.Now()
	for m := 0; m < 2; m++ {
		for g := 0; g < groups; g++ {
			createMember(t, ns, fmt.Sprintf("g%02d", g), fmt.Sprintf("g%02d-%d", g, m), 4)
		}
	}

	completedAt := map[string]time.Time{}
	deleted := map[string]bool{}
	// freed holds when room for a group was given back while groups
	// waited; the next group to complete measures the latency.
	var freed []time.Time
	var worst time.Duration
	var short time.Time // since when fewer than two groups run while others wait
	var gaps []string
	for len(deleted) < groups && time.Since(start) < 3*time.Minute {
		now := time.Now()
		running := 0
		for g := 0; g < groups; g++ {
			name := fmt.Sprintf("g%02d", g)
			if deleted[name] || !gw.complete(name) {
				continue
			}
			if completedAt[name].IsZero() {
				completedAt[name] = now
				if len(freed) > 0 {
					worst = max(worst, now.Sub(freed[0]))
					freed = freed[1:]
				}
			}
			if now.Sub(completedAt[name]) < hold {
				running++
				continue
			}
			// The job is done: its pods and its PodGroup go, as kubectl
			// deletes them (with the default grace period).
			deleted[name] = true
			if len(completedAt) < groups {
				freed = append(freed, now)
			}
			for m := 0; m < 2; m++ {
				_ = cp.Client.CoreV1().Pods(ns).Delete(context.Background(), fmt.Sprintf("%s-%d", name, m), metav1.DeleteOptions{})
			}
			_ = pgClient.SchedulingV1alpha1().PodGroups(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
		}
		waiting := groups - len(completedAt)
		switch {
		case running >= 2 || waiting == 0:
			short = time.Time{}
		case short.IsZero():
			short = now
		case now.Sub(short) > time.Second:
			gaps = append(gaps, fmt.Sprintf("at %v: %d running, %d waiting", now.Sub(start).Round(100*time.Millisecond), running, waiting))
			if len(gaps) == 1 {
				logConditions(t, ns)
			}
			short = time.Time{}
		}
		if p := gw.partial(5 * time.Second); len(p) > 0 {
			t.Fatalf("partial gang: %v", p)
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	if len(deleted) < groups {
		logConditions(t, ns)
		t.Fatalf("%d of %d groups ran in %v", len(deleted), groups, took.Round(time.Second))
	}
	if len(gaps) > 0 {
		logConditions(t, ns)
		t.Errorf("fewer than two groups ran while others waited, for over a second, %d times: %v", len(gaps), gaps)
	}
	// Six rounds of hold, plus scheduling; serialised it would be 12 rounds.
	if took > 9*hold {
		t.Errorf("12 groups took %v, want about 6 x %v", took.Round(100*time.Millisecond), hold)
	}
	t.Logf("12 groups of 2 x 4 GPUs, %v each, ran in %v; a waiting group bound at most %v after room was freed", hold, took.Round(100*time.Millisecond), worst.Round(10*time.Millisecond))
}

// logConditions logs every pod's PodScheduled condition in ns, for a test
// that failed on timing.
func logConditions(t *testing.T, ns string) {
	t.Helper()
	pods, _ := cp.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodScheduled {
				t.Logf("%s node=%q %s %s: %s", p.Name, p.Spec.NodeName, c.Status, c.Reason, c.Message)
			}
		}
	}
}

// TestGangWithoutBackoff: scheduler-plugins' default of no pod-group
// back-off (podGroupBackoffSeconds: 0) can be configured: the shipped
// configuration with backoffInitialSeconds and backoffMaxSeconds 0 starts,
// and a group that cannot fit at first binds as soon as room is made,
// without waiting out a back-off.
func TestGangWithoutBackoff(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "nobackoff-node", cpu: "64", memory: "256Gi", gpus: 4})
	ns := newNamespace(t)
	startScheduler(t, cp.Config, schedulerConfigWith(t, "backoffInitialSeconds: 1\n          backoffMaxSeconds: 60", "backoffInitialSeconds: 0\n          backoffMaxSeconds: 0"))
	createPod(t, ns, podSpec{name: "blocker", schedulerName: "tessera-scheduler", gpus: 4})
	waitBound(t, ns, "blocker", 60*time.Second)
	createPodGroup(t, ns, "pair", 2, 30, nil)
	createMember(t, ns, "pair", "pair-0", 2)
	createMember(t, ns, "pair", "pair-1", 2)
	waitReason(t, ns, "pair-0", "pod group")
	if err := cp.Client.CoreV1().Pods(ns).Delete(context.Background(), "blocker", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitBound(t, ns, "pair-0", 30*time.Second)
	waitBound(t, ns, "pair-1", 30*time.Second)
}
