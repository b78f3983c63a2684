package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
)

// waitGroupStatus waits until the PodGroup's status satisfies ok, and
// fails naming the last status seen.
func waitGroupStatus(t *testing.T, ns, name string, what string, ok func(schedv1alpha1.PodGroupStatus) bool) schedv1alpha1.PodGroupStatus {
	t.Helper()
	client := versioned.NewForConfigOrDie(jsonConfig())
	var last schedv1alpha1.PodGroupStatus
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pg, err := client.SchedulingV1alpha1().PodGroups(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = pg.Status
		return ok(pg.Status), nil
	})
	if err != nil {
		t.Fatalf("PodGroup %s/%s: status never %s; last %+v", ns, name, what, last)
	}
	return last
}

// setPhase reports the pod in the given phase, as its kubelet would.
func setPhase(t *testing.T, ns, name string, phase v1.PodPhase) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		p.Status.Phase = phase
		_, err = cp.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("setting %s/%s %s: %v", ns, name, phase, err)
	}
}

// TestPodGroupStatusFollowsMembers: the PodGroup status follows its members
// to the end as scheduler-plugins' controller reports it: Running with the
// counts while one of two has succeeded and the other runs, Finished with
// succeeded counted when both have; Failed when a member fails. Finished
// pods leave the scheduler's own pod informer, so this needs them watched.
func TestPodGroupStatusFollowsMembers(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "pgstatus-node", cpu: "64", memory: "256Gi", gpus: 8})
	ns := newNamespace(t)
	startScheduler(t, cp.Config, schedulerConfig(t))
	for _, g := range []string{"done", "broken"} {
		createPodGroup(t, ns, g, 2, 30, nil)
		for m := 0; m < 2; m++ {
			createMember(t, ns, g, fmt.Sprintf("%s-%d", g, m), 1)
		}
		for m := 0; m < 2; m++ {
			waitBound(t, ns, fmt.Sprintf("%s-%d", g, m), 60*time.Second)
			setPhase(t, ns, fmt.Sprintf("%s-%d", g, m), v1.PodRunning)
		}
		waitGroupStatus(t, ns, g, "Running with 2 running", func(s schedv1alpha1.PodGroupStatus) bool {
			return s.Phase == schedv1alpha1.PodGroupRunning && s.Running == 2
		})
	}

	setPhase(t, ns, "done-0", v1.PodSucceeded)
	waitGroupStatus(t, ns, "done", "Running with 1 running and 1 succeeded", func(s schedv1alpha1.PodGroupStatus) bool {
		return s.Phase == schedv1alpha1.PodGroupRunning && s.Running == 1 && s.Succeeded == 1
	})
	setPhase(t, ns, "done-1", v1.PodSucceeded)
	waitGroupStatus(t, ns, "done", "Finished with 2 succeeded", func(s schedv1alpha1.PodGroupStatus) bool {
		return s.Phase == schedv1alpha1.PodGroupFinished && s.Succeeded == 2 && s.Running == 0
	})

	setPhase(t, ns, "broken-1", v1.PodFailed)
	waitGroupStatus(t, ns, "broken", "Failed with 1 failed and 1 running", func(s schedv1alpha1.PodGroupStatus) bool {
		return s.Phase == schedv1alpha1.PodGroupFailed && s.Failed == 1 && s.Running == 1
	})
}

// TestPodGroupStatusOnRecreatedObject: a PodGroup deleted and re-created
// under the same name (as a Job controller does) gets a status, although
// it is the same as the last one written for the old object.
func TestPodGroupStatusOnRecreatedObject(t *testing.T) {
	installCRDs(t)
	ns := newNamespace(t)
	startScheduler(t, cp.Config, schedulerConfig(t))
	client := versioned.NewForConfigOrDie(jsonConfig())
	for round := 0; round < 2; round++ {
		createPodGroup(t, ns, "again", 2, 30, nil)
		waitGroupStatus(t, ns, "again", fmt.Sprintf("Pending (object %d)", round+1), func(s schedv1alpha1.PodGroupStatus) bool {
			return s.Phase == schedv1alpha1.PodGroupPending
		})
		if err := client.SchedulingV1alpha1().PodGroups(ns).Delete(context.Background(), "again", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := client.SchedulingV1alpha1().PodGroups(ns).Get(ctx, "again", metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Fatal("PodGroup not deleted")
		}
		// Let the scheduler see the deletion before the object returns.
		time.Sleep(2 * time.Second)
	}
}
