package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// fillWithPods creates count 1-GPU pods named prefix-i in ns with the
// priority class and waits until all are bound.
func fillWithPods(t *testing.T, ns, prefix, priorityClass string, count int) {
	t.Helper()
	for i := 0; i < count; i++ {
		createPod(t, ns, podSpec{name: fmt.Sprintf("%s-%d", prefix, i), schedulerName: "tessera-scheduler", gpus: 1, priorityClass: priorityClass})
	}
	for i := 0; i < count; i++ {
		waitBound(t, ns, fmt.Sprintf("%s-%d", prefix, i), 60*time.Second)
	}
}

// createPriorityMembers creates a pod group's members with a priority class.
func createPriorityMembers(t *testing.T, ns, group, priorityClass string, count int, gpus int64) {
	t.Helper()
	for i := 0; i < count; i++ {
		createPod(t, ns, podSpec{name: fmt.Sprintf("%s-%d", group, i), schedulerName: "tessera-scheduler", gpus: gpus,
			priorityClass: priorityClass, labels: map[string]string{schedv1alpha1.PodGroupLabel: group}})
	}
}

// waitEvent waits until an Event in ns has a message containing want.
func waitEvent(t *testing.T, ns, want string, timeout time.Duration) bool {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		evs, err := cp.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if strings.Contains(e.Message, want) {
				return true, nil
			}
		}
		return false, nil
	})
	return err == nil
}

// preemptionCluster starts the scheduler on two 4-GPU nodes named
// prefix-1 and prefix-2 with the priority classes tessera-test-low and
// tessera-test-high, and returns two new namespaces: one for the victims,
// one for the preempting group.
func preemptionCluster(t *testing.T, prefix string) (low, high string) {
	t.Helper()
	installCRDs(t)
	startKubelets(t)
	createNodes(t,
		nodeSpec{name: prefix + "-1", cpu: "64", memory: "256Gi", gpus: 4},
		nodeSpec{name: prefix + "-2", cpu: "64", memory: "256Gi", gpus: 4})
	low, high = newNamespace(t), newNamespace(t)
	createPriorityClass(t, "tessera-test-low", 10)
	createPriorityClass(t, "tessera-test-high", 1000000)
	startScheduler(t, cp.Config, schedulerConfig(t))
	return low, high
}

// TestGangPreemptsWhole: two 4-GPU nodes full of low-priority 1-GPU pods; a
// high-priority group of three 2-GPU members needs six GPUs. The group's
// preemption is planned for all three members at once: exactly six victims
// (four on one node, two on the other: each member needs two GPUs of one
// node), every Preempted Event names the pod group, and the group binds
// whole.
func TestGangPreemptsWhole(t *testing.T) {
	low, high := preemptionCluster(t, "gang-preempt")

	fillWithPods(t, low, "low", "tessera-test-low", 8)
	watch := watchGangs(t, high, map[string]int{"train": 3})
	defer watch.stop()
	createPodGroup(t, high, "train", 3, 60, nil)
	createPriorityMembers(t, high, "train", "tessera-test-high", 3, 2)
	for i := 0; i < 3; i++ {
		waitBound(t, high, fmt.Sprintf("train-%d", i), 90*time.Second)
	}
	waitPodCount(t, low, 2, 30*time.Second)
	if p := watch.partial(5 * time.Second); len(p) > 0 {
		t.Errorf("partly bound groups: %v", p)
	}
	evs, err := cp.Client.CoreV1().Events(low).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs.Items {
		if e.Reason != "Preempted" {
			continue
		}
		n++
		if !strings.Contains(e.Message, "pod group") {
			t.Errorf("Preempted Event %q does not name the pod group", e.Message)
		}
	}
	if n != 6 {
		t.Errorf("%d Preempted Events, want 6 (the group's members need six GPUs, no more)", n)
	}
}

// TestGangPreemptionNothingWhenHopeless: the same group, but only four
// GPUs are held by lower-priority pods (the other four by pods of the
// group's own priority). Evicting every possible victim would still leave
// the group two GPUs short, so nothing is evicted — per-member preemption
// would have evicted pods for the first members of a group that can never
// run — and the members say why.
func TestGangPreemptionNothingWhenHopeless(t *testing.T) {
	low, high := preemptionCluster(t, "gang-hopeless")

	fillWithPods(t, low, "low", "tessera-test-low", 4)
	fillWithPods(t, low, "peer", "tessera-test-high", 4)
	createPodGroup(t, high, "train", 3, 60, nil)
	createPriorityMembers(t, high, "train", "tessera-test-high", 3, 2)

	if !waitEvent(t, high, "cannot be placed whole even by preemption", 60*time.Second) {
		t.Fatalf("no member's FailedScheduling Event says that preemption cannot place the group")
	}
	time.Sleep(3 * time.Second)
	if got := podNames(t, low); len(got) != 8 {
		t.Errorf("pods %v left, want all 8: nothing may be evicted for a group that cannot run", got)
	}
	if n := preemptedEvents(t, low); n != 0 {
		t.Errorf("%d Preempted Events, want 0", n)
	}
	if n := boundIn(t, high); n != 0 {
		t.Errorf("%d members bound, want 0", n)
	}
}

// TestGangNotStarvedBySmallGroups: a 4-GPU node, a stream of small groups
// (two 1-GPU members each) and one big group of four created early in the
// stream. Each time a small group finishes, its two GPUs would go to the
// next small group and the big group would never see four free GPUs. With
// starvationAfterSeconds 3, once the big group has waited that long the
// younger small groups stop starting, the freed GPUs accumulate, and the
// big group runs while the stream goes on.
func TestGangNotStarvedBySmallGroups(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "starve-node", cpu: "64", memory: "256Gi", gpus: 4})
	ns := newNamespace(t)
	startScheduler(t, cp.Config, schedulerConfigWith(t, "starvationAfterSeconds: 60", "starvationAfterSeconds: 3"))

	small := func(i int) string { return fmt.Sprintf("small-%d", i) }
	startSmall := func(i int) {
		createPodGroup(t, ns, small(i), 2, 30, nil)
		for j := 0; j < 2; j++ {
			createMember(t, ns, small(i), fmt.Sprintf("%s-%d", small(i), j), 1)
		}
	}
	finish := func(i int) {
		for j := 0; j < 2; j++ {
			zero := int64(0)
			if err := cp.Client.CoreV1().Pods(ns).Delete(context.Background(), fmt.Sprintf("%s-%d", small(i), j), metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				t.Fatal(err)
			}
		}
	}
	startSmall(0)
	startSmall(1)
	for i := 0; i < 2; i++ {
		for j := 0; j < 2; j++ {
			waitBound(t, ns, fmt.Sprintf("%s-%d", small(i), j), 60*time.Second)
		}
	}
	createPodGroup(t, ns, "big", 4, 30, nil)
	for j := 0; j < 4; j++ {
		createMember(t, ns, "big", fmt.Sprintf("big-%d", j), 1)
	}

	// The stream: every 1.5 s the oldest running small group finishes and
	// a new one arrives.
	bigBound := func() bool {
		for j := 0; j < 4; j++ {
			p, err := cp.Client.CoreV1().Pods(ns).Get(context.Background(), fmt.Sprintf("big-%d", j), metav1.GetOptions{})
			if err != nil || p.Spec.NodeName == "" {
				return false
			}
		}
		return true
	}
	running := []int{0, 1}
	next := 2
	deadline := time.Now().Add(40 * time.Second)
	for !bigBound() {
		if time.Now().After(deadline) {
			t.Fatalf("the big group was starved: not bound after %d small groups passed it", next-2)
		}
		time.Sleep(1500 * time.Millisecond)
		if len(running) > 0 {
			finish(running[0])
			running = running[1:]
		}
		startSmall(next)
		// A small group that got a place runs until the stream ends it.
		for i := next - 1; i <= next; i++ {
			if i >= 2 && !slices.Contains(running, i) && boundPods(t, ns, small(i)) == 2 {
				running = append(running, i)
			}
		}
		next++
	}
	if n := boundIn(t, ns); n > 4 {
		// Only the big group's four pods can hold the node's four GPUs.
		t.Errorf("%d pods bound on a 4-GPU node", n)
	}
}

// boundPods counts the bound members of a pod group.
func boundPods(t *testing.T, ns, group string) int {
	t.Helper()
	pods, err := cp.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: schedv1alpha1.PodGroupLabel + "=" + group})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
			n++
		}
	}
	return n
}
