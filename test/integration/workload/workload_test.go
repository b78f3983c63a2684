// Package workload tests Tessera's shipped profile with upstream's
// workload-aware scheduling turned on (feature gate GenericWorkload,
// scheduling.k8s.io/v1beta1 PodGroups). Feature gates are process-wide, so
// this needs its own test binary and control plane, apart from
// test/integration.
package workload

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1beta1 "k8s.io/api/scheduling/v1beta1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tessera-sched/tessera/manifests"
	"github.com/tessera-sched/tessera/pkg/localcluster"
)

var cp *localcluster.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tessera-workload-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cp, err = localcluster.StartProgram(localcluster.Options{Dir: dir, APIServerFlags: []string{
		"--feature-gates=GenericWorkload=true",
		"--runtime-config=scheduling.k8s.io/v1beta1=true",
	}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting control plane: %v\n", err)
		return 1
	}
	defer cp.Stop()
	return m.Run()
}

// TestUpstreamPodGroupAllOrNothing: with GenericWorkload on, a
// scheduling.k8s.io/v1beta1 PodGroup (minCount 3) scheduled by the shipped
// Tessera profile binds nothing while only two of its pods exist, and all
// three once the third arrives. Tessera's own Gang handles scheduler-plugins
// PodGroups; pods that reference an upstream PodGroup are left to upstream's
// GangScheduling, which the profile keeps enabled.
func TestUpstreamPodGroupAllOrNothing(t *testing.T) {
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("8"), v1.ResourceMemory: resource.MustParse("32Gi"), v1.ResourcePods: resource.MustParse("110")}
		node := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("wl-node-%d", i)},
			Status: v1.NodeStatus{Capacity: capacity, Allocatable: capacity,
				Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}},
		}
		if err := localcluster.CreateNode(ctx, cp.Client, node); err != nil {
			t.Fatal(err)
		}
	}
	config, err := manifests.FS.ReadFile("base/scheduler-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "scheduler.kubeconfig")
	if err := localcluster.WriteKubeconfig(cp.Config, kubeconfig); err != nil {
		t.Fatal(err)
	}
	s, err := localcluster.StartScheduler(ctx, kubeconfig, config, dir)
	if err != nil {
		t.Fatalf("starting scheduler: %v", err)
	}
	defer s.Stop()

	ns := "upstream-gang"
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pg := &schedulingv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Name: "trio", Namespace: ns},
		Spec: schedulingv1beta1.PodGroupSpec{SchedulingPolicy: schedulingv1beta1.PodGroupSchedulingPolicy{
			Gang: &schedulingv1beta1.GangSchedulingPolicy{MinCount: 3},
		}},
	}
	if _, err := cp.Client.SchedulingV1beta1().PodGroups(ns).Create(ctx, pg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	group := "trio"
	member := func(i int) {
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("trio-%d", i), Namespace: ns},
			Spec: v1.PodSpec{
				SchedulerName:   "tessera-scheduler",
				SchedulingGroup: &v1.PodSchedulingGroup{PodGroupName: &group},
				Containers: []v1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10",
					Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}}}},
			},
		}
		if _, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bound := func() int {
		n, err := localcluster.CountBound(ctx, cp.Client, ns)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	member(0)
	member(1)
	time.Sleep(5 * time.Second)
	if n := bound(); n != 0 {
		t.Fatalf("%d pods bound while only 2 of the group's 3 exist", n)
	}
	member(2)
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		return bound() == 3, nil
	}); err != nil {
		t.Fatalf("%d of 3 pods bound after the group completed", bound())
	}
}
