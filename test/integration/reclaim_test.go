package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// startKubelets stands in for the nodes' kubelets until the test ends, so
// that preempted pods actually go away.
func startKubelets(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); localcluster.SimulateKubelets(ctx, cp.Client) }()
	t.Cleanup(func() { cancel(); <-done })
}

// createPriorityClass creates a cluster-wide PriorityClass for the test.
func createPriorityClass(t *testing.T, name string, value int32) {
	t.Helper()
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value}
	if _, err := cp.Client.SchedulingV1().PriorityClasses().Create(context.Background(), pc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cp.Client.SchedulingV1().PriorityClasses().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// podNames lists the names of the pods that exist in ns and are not being
// deleted.
func podNames(t *testing.T, ns string) []string {
	t.Helper()
	pods, err := cp.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	return out
}

// waitPodCount waits until ns holds exactly n live pods.
func waitPodCount(t *testing.T, ns string, n int, timeout time.Duration) {
	t.Helper()
	var names []string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		names = podNames(t, ns)
		return len(names) == n, nil
	})
	if err != nil {
		t.Fatalf("namespace %s has pods %v, want %d pods", ns, names, n)
	}
}

// preemptedEvents counts the Preempted Events recorded for pods of ns.
func preemptedEvents(t *testing.T, ns string) int {
	t.Helper()
	evs, err := cp.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs.Items {
		if e.Reason == "Preempted" {
			n++
		}
	}
	return n
}

// TestQuotaReclaimIssue683 is scheduler-plugins issue #683 exactly: a
// 5-GPU cluster; A {min 4, max 5} uses all 5 GPUs (borrowing one); B {min
// 1} asks for its one guaranteed GPU. B must get it by reclaiming A's
// borrowed GPU, and A must keep its guaranteed 4.
func TestQuotaReclaimIssue683(t *testing.T) {
	installCRDs(t)
	startKubelets(t)
	createNodes(t, nodeSpec{name: "reclaim-683-node", cpu: "64", memory: "256Gi", gpus: 5})
	a, b := newNamespace(t), newNamespace(t)
	createQuota(t, a, gpus(4), gpus(5))
	createQuota(t, b, gpus(1), nil)
	startScheduler(t, cp.Config, schedulerConfig(t))

	for i := 0; i < 5; i++ {
		createPod(t, a, podSpec{name: fmt.Sprintf("a-%d", i), schedulerName: "tessera-scheduler", gpus: 1})
		waitBound(t, a, fmt.Sprintf("a-%d", i), 60*time.Second)
	}
	createPod(t, b, podSpec{name: "b-0", schedulerName: "tessera-scheduler", gpus: 1})
	waitBound(t, b, "b-0", 60*time.Second)
	waitPodCount(t, a, 4, 30*time.Second)
	if n := boundIn(t, a); n != 4 {
		t.Errorf("namespace A has %d bound pods after reclaim, want its min 4", n)
	}
	if n := preemptedEvents(t, a); n != 1 {
		t.Errorf("%d Preempted Events in A, want 1", n)
	}
	// A is back at its min: nothing more may be taken from it. A second B
	// pod (B would borrow) waits instead of preempting A.
	createPod(t, b, podSpec{name: "b-1", schedulerName: "tessera-scheduler", gpus: 1})
	waitUnschedulable(t, b, "b-1", 30*time.Second)
	time.Sleep(2 * time.Second)
	if got := podNames(t, a); len(got) != 4 {
		t.Errorf("A has pods %v after B asked beyond its min, want 4 (A is within its min)", got)
	}
}

// TestQuotaReclaimAcrossTwoNodes: A (min 0) borrows all four GPUs of two
// 2-GPU nodes; B (min 4) asks for two 2-GPU pods. Each needs a whole node,
// so reclaim must free A's GPUs on both nodes, and only A's.
func TestQuotaReclaimAcrossTwoNodes(t *testing.T) {
	installCRDs(t)
	startKubelets(t)
	createNodes(t,
		nodeSpec{name: "reclaim-two-1", cpu: "64", memory: "256Gi", gpus: 2},
		nodeSpec{name: "reclaim-two-2", cpu: "64", memory: "256Gi", gpus: 2})
	a, b := newNamespace(t), newNamespace(t)
	createQuota(t, a, gpus(0), gpus(4))
	createQuota(t, b, gpus(4), gpus(4))
	startScheduler(t, cp.Config, schedulerConfig(t))

	for i := 0; i < 4; i++ {
		createPod(t, a, podSpec{name: fmt.Sprintf("a-%d", i), schedulerName: "tessera-scheduler", gpus: 1})
		waitBound(t, a, fmt.Sprintf("a-%d", i), 60*time.Second)
	}
	createPod(t, b, podSpec{name: "b-0", schedulerName: "tessera-scheduler", gpus: 2})
	createPod(t, b, podSpec{name: "b-1", schedulerName: "tessera-scheduler", gpus: 2})
	p0 := waitBound(t, b, "b-0", 90*time.Second)
	p1 := waitBound(t, b, "b-1", 90*time.Second)
	if p0.Spec.NodeName == p1.Spec.NodeName {
		t.Errorf("both 2-GPU pods on %s, a 2-GPU node", p0.Spec.NodeName)
	}
	waitPodCount(t, a, 0, 30*time.Second)
}

// TestQuotaReclaimGangWhole: A borrows four GPUs with a gang of four
// one-GPU members spread over two nodes. B (min 1) reclaims one GPU; one
// member's GPU would be enough, but a gang is evicted whole or not at all,
// so the whole gang goes and no member is left holding a GPU alone.
func TestQuotaReclaimGangWhole(t *testing.T) {
	installCRDs(t)
	startKubelets(t)
	createNodes(t,
		nodeSpec{name: "reclaim-gang-1", cpu: "64", memory: "256Gi", gpus: 2},
		nodeSpec{name: "reclaim-gang-2", cpu: "64", memory: "256Gi", gpus: 2})
	a, b := newNamespace(t), newNamespace(t)
	createQuota(t, a, gpus(0), gpus(4))
	createQuota(t, b, gpus(1), gpus(4))
	startScheduler(t, cp.Config, schedulerConfig(t))

	createPodGroup(t, a, "train", 4, 30, nil)
	for i := 0; i < 4; i++ {
		createMember(t, a, "train", fmt.Sprintf("train-%d", i), 1)
	}
	for i := 0; i < 4; i++ {
		waitBound(t, a, fmt.Sprintf("train-%d", i), 60*time.Second)
	}

	// From now on, A's live pod count may only be 4 (whole gang) or 0.
	var mu sync.Mutex
	var partial []int
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if n := len(podNames(t, a)); n != 0 && n != 4 {
				mu.Lock()
				partial = append(partial, n)
				mu.Unlock()
			}
		}
	}()
	createPod(t, b, podSpec{name: "b-0", schedulerName: "tessera-scheduler", gpus: 1})
	waitBound(t, b, "b-0", 60*time.Second)
	waitPodCount(t, a, 0, 30*time.Second)
	close(stop)
	<-done
	// Deletions are separate API calls, so the count passes through 3, 2, 1
	// for an instant; what must never happen is a partial gang that stays.
	if n := preemptedEvents(t, a); n != 4 {
		t.Errorf("%d Preempted Events in A, want 4 (the whole gang)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(partial) > 20 {
		t.Errorf("gang stayed partly evicted for %d samples (counts %v)", len(partial), partial)
	}
}

// TestPreemptionRespectsQuotas: ordinary priority preemption still works
// inside a namespace, but nobody preempts a namespace that is within its
// min, not even a much higher-priority pod of a namespace without a quota.
func TestPreemptionRespectsQuotas(t *testing.T) {
	installCRDs(t)
	startKubelets(t)
	createNodes(t, nodeSpec{name: "preempt-node", cpu: "64", memory: "256Gi", gpus: 4})
	a, b, free := newNamespace(t), newNamespace(t), newNamespace(t)
	createQuota(t, a, gpus(2), gpus(2))
	createQuota(t, b, gpus(2), gpus(2))
	createPriorityClass(t, "tessera-test-low", 10)
	createPriorityClass(t, "tessera-test-high", 1000000)
	startScheduler(t, cp.Config, schedulerConfig(t))

	for _, ns := range []string{a, b} {
		for i := 0; i < 2; i++ {
			createPod(t, ns, podSpec{name: fmt.Sprintf("low-%d", i), schedulerName: "tessera-scheduler", gpus: 1, priorityClass: "tessera-test-low"})
			waitBound(t, ns, fmt.Sprintf("low-%d", i), 60*time.Second)
		}
	}
	// A high-priority pod of a namespace without a quota may not preempt
	// A's or B's guaranteed GPUs.
	createPod(t, free, podSpec{name: "intruder", schedulerName: "tessera-scheduler", gpus: 1, priorityClass: "tessera-test-high"})
	cond := waitUnschedulable(t, free, "intruder", 30*time.Second)
	if !strings.Contains(cond.Message, "preemption") {
		t.Errorf("intruder's reason %q does not mention preemption", cond.Message)
	}
	// A high-priority pod of A, at A's max, preempts a low-priority pod of
	// A, and only of A.
	createPod(t, a, podSpec{name: "high", schedulerName: "tessera-scheduler", gpus: 1, priorityClass: "tessera-test-high"})
	waitBound(t, a, "high", 60*time.Second)
	waitPodCount(t, a, 2, 30*time.Second)
	if got := podNames(t, b); len(got) != 2 {
		t.Errorf("B has pods %v, want its 2 (B is within its min)", got)
	}
	time.Sleep(2 * time.Second)
	if p, err := cp.Client.CoreV1().Pods(free).Get(context.Background(), "intruder", metav1.GetOptions{}); err != nil || p.Spec.NodeName != "" {
		t.Errorf("intruder bound (%v) or gone (%v)", p.Spec.NodeName, err)
	}
	_ = v1.PodRunning
}

// TestGangQuotaCheckedWhole: quota never lets part of a gang in. A gang
// larger than its namespace's max is rejected whole with a reason naming
// the max; a gang that fits the max but not the quota left now waits
// without binding anyone, and binds whole once quota frees up.
func TestGangQuotaCheckedWhole(t *testing.T) {
	installCRDs(t)
	startKubelets(t)
	createNodes(t, nodeSpec{name: "gang-quota-node", cpu: "64", memory: "256Gi", gpus: 8})
	a := newNamespace(t)
	createQuota(t, a, gpus(0), gpus(4))
	startScheduler(t, cp.Config, schedulerConfig(t))

	var mu sync.Mutex
	bound := map[string]bool{}
	stop := watchBindings(t, a, func(p *v1.Pod) {
		mu.Lock()
		defer mu.Unlock()
		bound[p.Name] = true
	})
	defer stop()

	createPodGroup(t, a, "huge", 6, 30, nil)
	for i := 0; i < 6; i++ {
		createMember(t, a, "huge", fmt.Sprintf("huge-%d", i), 1)
	}
	if msg := waitReason(t, a, "huge-0", "cannot be admitted whole by its quota"); msg != "" {
		t.Errorf("huge-0's reason is %q, want the group rejected by its quota's max", msg)
	}

	for i := 0; i < 2; i++ {
		createPod(t, a, podSpec{name: fmt.Sprintf("busy-%d", i), schedulerName: "tessera-scheduler", gpus: 1})
		waitBound(t, a, fmt.Sprintf("busy-%d", i), 60*time.Second)
	}
	createPodGroup(t, a, "three", 3, 60, nil)
	for i := 0; i < 3; i++ {
		createMember(t, a, "three", fmt.Sprintf("three-%d", i), 1)
	}
	if msg := waitReason(t, a, "three-0", "waits for quota"); msg != "" {
		t.Errorf("three-0's reason is %q, want it waiting for quota", msg)
	}
	time.Sleep(3 * time.Second)
	mu.Lock()
	for name := range bound {
		if strings.HasPrefix(name, "huge-") || strings.HasPrefix(name, "three-") {
			t.Errorf("%s bound although its group does not fit the quota", name)
		}
	}
	mu.Unlock()

	zero := int64(0)
	for i := 0; i < 2; i++ {
		if err := cp.Client.CoreV1().Pods(a).Delete(context.Background(), fmt.Sprintf("busy-%d", i), metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		waitBound(t, a, fmt.Sprintf("three-%d", i), 60*time.Second)
	}
	mu.Lock()
	defer mu.Unlock()
	for name := range bound {
		if strings.HasPrefix(name, "huge-") {
			t.Errorf("%s bound: a group above the quota's max must never bind", name)
		}
	}
}

// TestQuotaReclaimOverCPUAndMemory is scheduler-plugins' capacity-scheduling
// "cross-namespace preemption" scenario: quotas over CPU and memory (min
// 100Mi/100m, max 200Mi/200m each) on 2 nodes of 100Mi. ns1 runs three
// 50Mi/10m pods, borrowing 50Mi of ns2's memory while far below its CPU min.
// ns2's second pod, within its min, must reclaim the memory by preempting
// ns1's lowest-priority pod; its third, beyond its min, must wait and take
// nothing.
func TestQuotaReclaimOverCPUAndMemory(t *testing.T) {
	installCRDs(t)
	startKubelets(t)
	createPriorityClass(t, "mr-low", 10)
	createPriorityClass(t, "mr-mid", 100)
	createNodes(t,
		nodeSpec{name: "mr-node-1", cpu: "100", memory: "100Mi"},
		nodeSpec{name: "mr-node-2", cpu: "100", memory: "100Mi"})
	ns1, ns2 := newNamespace(t), newNamespace(t)
	quota := func(mem, cpu string) v1.ResourceList {
		return v1.ResourceList{v1.ResourceMemory: resource.MustParse(mem), v1.ResourceCPU: resource.MustParse(cpu)}
	}
	for _, ns := range []string{ns1, ns2} {
		createQuota(t, ns, quota("100Mi", "100m"), quota("200Mi", "200m"))
	}
	startScheduler(t, cp.Config, schedulerConfig(t))
	pod := func(ns, name, priority string) {
		createPod(t, ns, podSpec{name: name, schedulerName: "tessera-scheduler", cpu: "10m", memory: "50Mi", priorityClass: priority})
	}
	pod(ns1, "p1", "mr-mid")
	pod(ns1, "p2", "mr-mid")
	pod(ns1, "p3", "mr-low")
	for _, name := range []string{"p1", "p2", "p3"} {
		waitBound(t, ns1, name, 60*time.Second)
	}
	pod(ns2, "p4", "mr-mid")
	waitBound(t, ns2, "p4", 60*time.Second)
	pod(ns2, "p5", "mr-mid")
	waitBound(t, ns2, "p5", 60*time.Second)
	waitPodCount(t, ns1, 2, 30*time.Second)
	if got := strings.Join(podNames(t, ns1), ","); got != "p1,p2" {
		t.Errorf("ns1 kept %s, want p1,p2 (p3 is its lowest priority)", got)
	}
	pod(ns2, "p6", "mr-low")
	waitUnschedulable(t, ns2, "p6", 30*time.Second)
	time.Sleep(2 * time.Second)
	if got := podNames(t, ns1); len(got) != 2 {
		t.Errorf("ns1 has pods %v after ns2 asked beyond its min, want p1,p2 (ns1 is at its memory min)", got)
	}
}

// TestReclaimFreesLocalGPUs: victims are chosen so that the freed GPUs make
// a good placement. A 4-GPU PCIe node (GPUs 0-1 on NUMA node 0, 2-3 on 1)
// runs four 1-GPU pods of a borrowing namespace; the two started last hold
// GPUs 0 and 2, one on each NUMA node. A 2-GPU pod of a namespace within
// its min reclaims two of them: by age alone it would get GPUs 0 and 2;
// an equally cheap set (two pods of the same priority) frees two GPUs of
// one NUMA node, and that one is taken.
func TestReclaimFreesLocalGPUs(t *testing.T) {
	installCRDs(t)
	startKubelets(t)
	createNodes(t, nodeSpec{name: "local-reclaim-node", cpu: "64", memory: "256Gi", gpus: 4,
		labels: map[string]string{"nvidia.com/gpu.product": "NVIDIA-A100-PCIE-40GB"}})
	research, prod := newNamespace(t), newNamespace(t)
	createQuota(t, research, gpus(0), gpus(4))
	createQuota(t, prod, gpus(2), gpus(2))
	startScheduler(t, cp.Config, schedulerConfig(t))

	run := func(name string) []int {
		createPod(t, research, podSpec{name: name, schedulerName: "tessera-scheduler", gpus: 1})
		p := waitBound(t, research, name, 60*time.Second)
		waitRunning(t, research, name)
		return assignmentOf(t, p).GPUs
	}
	for i := 0; i < 4; i++ {
		run(fmt.Sprintf("r%d", i))
	}
	// Replace the pods on GPUs 0 and 2, so that the newest two straddle
	// the NUMA nodes.
	for i := 0; i < 4; i++ {
		p, err := cp.Client.CoreV1().Pods(research).Get(context.Background(), fmt.Sprintf("r%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if g := assignmentOf(t, p).GPUs[0]; g == 0 || g == 2 {
			if err := cp.Client.CoreV1().Pods(research).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitPodCount(t, research, 2, 30*time.Second)
	newest := map[int]bool{}
	for _, name := range []string{"r4", "r5"} {
		time.Sleep(1100 * time.Millisecond) // distinct start times, newest last
		newest[run(name)[0]] = true
	}
	if !newest[0] || !newest[2] {
		t.Fatalf("set-up: the newest pods hold GPUs %v, want 0 and 2", newest)
	}

	createPod(t, prod, podSpec{name: "serve-2gpu", schedulerName: "tessera-scheduler", gpus: 2})
	got := assignmentOf(t, waitBound(t, prod, "serve-2gpu", 60*time.Second)).GPUs
	if len(got) != 2 || got[0]/2 != got[1]/2 {
		t.Errorf("serve-2gpu got GPUs %v, want two of one NUMA node", got)
	}
	waitPodCount(t, research, 2, 30*time.Second)
	if n := preemptedEvents(t, research); n != 2 {
		t.Errorf("%d pods preempted, want 2", n)
	}
}

// waitRunning waits until the pod is Running.
func waitRunning(t *testing.T, ns, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == v1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not Running", ns, name)
	}
}

// TestPreemptionReasonWithoutQuota: a pod of a namespace without an
// ElasticQuota that cannot preempt is told why in its own terms (it may
// preempt only lower-priority pods of namespaces without one), not with
// "the quota rules" of a quota it does not have.
func TestPreemptionReasonWithoutQuota(t *testing.T) {
	installCRDs(t)
	startKubelets(t)
	createNodes(t, nodeSpec{name: "noquota-node", cpu: "8", memory: "32Gi", gpus: 2})
	governed, free := newNamespace(t), newNamespace(t)
	createQuota(t, governed, gpus(2), gpus(2))
	createPriorityClass(t, "tessera-test-high", 1000000)
	startScheduler(t, cp.Config, schedulerConfig(t))
	createPod(t, governed, podSpec{name: "owner", schedulerName: "tessera-scheduler", gpus: 2})
	waitBound(t, governed, "owner", 30*time.Second)
	createPod(t, free, podSpec{name: "urgent", schedulerName: "tessera-scheduler", gpus: 2, priorityClass: "tessera-test-high"})
	var msg string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		msg = waitUnschedulable(t, free, "urgent", 30*time.Second).Message
		return strings.Contains(msg, "has no ElasticQuota"), nil
	})
	if err != nil || strings.Contains(msg, "quota rules") {
		t.Fatalf("reason %q: want it to say the namespace has no ElasticQuota, not to speak of quota rules", msg)
	}
	if n := boundIn(t, governed); n != 1 {
		t.Errorf("the governed pod was preempted by a pod of a namespace without a quota")
	}
	t.Logf("reason: %s", msg)
}
