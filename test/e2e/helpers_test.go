//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/tessera-sched/tessera/pkg/realcluster"
)

// busyboxPod is a pod that runs script in the busybox image once.
func busyboxPod(ns, name, schedulerName, script string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.PodSpec{
			SchedulerName: schedulerName,
			RestartPolicy: v1.RestartPolicyNever,
			// sh as PID 1 ignores SIGTERM: without this, deleting a
			// sleeping pod takes the default 30 s.
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []v1.Container{{
				Name:            "main",
				Image:           realcluster.BusyboxImage,
				ImagePullPolicy: v1.PullNever,
				Command:         []string{"/bin/sh", "-c", script},
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
					v1.ResourceCPU: mustQuantity("10m"), v1.ResourceMemory: mustQuantity("16Mi"),
				}},
			}},
		},
	}
}

func createNamespace(t *testing.T, name string) {
	t.Helper()
	_, err := cluster.Client.CoreV1().Namespaces().Create(context.Background(), &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// Pods need the namespace's default ServiceAccount, which the
	// controller manager creates.
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("namespace %s has no default ServiceAccount: %v", name, err)
	}
}

// waitPod polls the pod until done says so (or fails) and returns it;
// what it last saw is in the failure.
func waitPod(t *testing.T, ns, name string, timeout time.Duration, what string, done func(*v1.Pod) (bool, error)) *v1.Pod {
	t.Helper()
	var pod *v1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		return done(p)
	})
	if err != nil {
		t.Fatalf("pod %s/%s did not %s in %s (%v): %s", ns, name, what, timeout, err, describePod(pod))
	}
	return pod
}

func ended(p *v1.Pod) bool {
	return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
}

// waitTerminated waits until the pod has run to completion.
func waitTerminated(t *testing.T, ns, name string, timeout time.Duration) *v1.Pod {
	t.Helper()
	return waitPod(t, ns, name, timeout, "run to completion", func(p *v1.Pod) (bool, error) { return ended(p), nil })
}

// waitRunning waits until the pod runs; its ending first is a failure.
func waitRunning(t *testing.T, ns, name string, timeout time.Duration) *v1.Pod {
	t.Helper()
	return waitPod(t, ns, name, timeout, "run", func(p *v1.Pod) (bool, error) {
		if ended(p) {
			return false, fmt.Errorf("pod ended: %s %s", p.Status.Reason, p.Status.Message)
		}
		return p.Status.Phase == v1.PodRunning, nil
	})
}

func describePod(p *v1.Pod) string {
	if p == nil {
		return "not found"
	}
	s := fmt.Sprintf("phase %s, node %q", p.Status.Phase, p.Spec.NodeName)
	for _, c := range p.Status.Conditions {
		if c.Status != v1.ConditionTrue {
			s += fmt.Sprintf("; %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			s += fmt.Sprintf("; container %s waiting: %s %s", cs.Name, w.Reason, w.Message)
		}
	}
	return s
}

func exitCode(p *v1.Pod) (int32, bool) {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Terminated != nil {
			return cs.State.Terminated.ExitCode, true
		}
	}
	return 0, false
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
