//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNodesRunContainers: a pod placed by the cluster's default scheduler
// runs on a real node, and the exit code its container returned is the
// one in its status.
func TestNodesRunContainers(t *testing.T) {
	ns := "e2e-smoke"
	createNamespace(t, ns)
	pod := busyboxPod(ns, "exit-7", "", "echo hello from $(cat /etc/hostname); exit 7")
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitTerminated(t, ns, pod.Name, 2*time.Minute)
	code, ok := exitCode(got)
	if !ok || code != 7 {
		t.Fatalf("pod %s: exit code %d (terminated: %v), want 7; %s", pod.Name, code, ok, describePod(got))
	}
	t.Logf("pod %s ran on %s and exited with %d", pod.Name, got.Spec.NodeName, code)
}
