package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tessera-sched/tessera/pkg/audit"
	"github.com/tessera-sched/tessera/test/chaos"
)

// chaosNamespace is a test namespace whose Bindings failBindings may fail.
func chaosNamespace(t *testing.T) string {
	t.Helper()
	ns := newNamespace(t)
	n, err := cp.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range chaos.NamespaceLabel {
		n.Labels[k] = v
	}
	if _, err := cp.Client.CoreV1().Namespaces().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// TestBindingFailures: while about half of all Bindings fail (a flaky API
// server or admission webhook), gangs, GPU pods under a quota and GPU
// shares keep every invariant the audit checks from the API server alone —
// no device given twice, no quota max exceeded, no pod group partly bound
// for long — at every check; and once Bindings succeed again every pod that
// fits is bound: the scheduler freed what each failed bind had reserved,
// and a gang whose member failed to bind completes.
func TestBindingFailures(t *testing.T) {
	installCRDs(t)
	ctx := context.Background()
	createNodes(t,
		nodeSpec{name: "chaos-node-1", cpu: "64", memory: "256Gi", gpus: 8},
		nodeSpec{name: "chaos-node-2", cpu: "64", memory: "256Gi", gpus: 8},
		nodeSpec{name: "chaos-node-3", cpu: "64", memory: "256Gi", gpus: 8})
	gangs, quota := chaosNamespace(t), chaosNamespace(t)
	createQuota(t, quota, gpus(4), gpus(10))

	faults, err := chaos.InstallBindingFaults(ctx, cp.Client, gangs, "chaos-node-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { faults.Remove(context.Background()) })
	if err := faults.Set(ctx, true); err != nil {
		t.Fatal(err)
	}

	startScheduler(t, cp.Config, schedulerConfig(t))
	for g := 0; g < 3; g++ {
		group := fmt.Sprintf("ddp-%d", g)
		createPodGroup(t, gangs, group, 4, 60, nil)
		for m := 0; m < 4; m++ {
			createMember(t, gangs, group, fmt.Sprintf("%s-m%d", group, m), 1)
		}
	}
	for i := 0; i < 4; i++ {
		createPod(t, gangs, podSpec{name: fmt.Sprintf("share-%d", i), schedulerName: "tessera-scheduler", annotations: map[string]string{"tessera.dev/gpu-milli": "300"}})
	}
	for i := 0; i < 8; i++ {
		createPod(t, quota, podSpec{name: fmt.Sprintf("train-%d", i), schedulerName: "tessera-scheduler", gpus: 2})
	}

	check := func(when string, grace time.Duration) *audit.Report {
		t.Helper()
		r, err := audit.Check(ctx, cp.Config, audit.Options{GangGrace: grace})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range r.Violations {
			t.Errorf("%s: %s", when, v)
		}
		return r
	}
	// Ten seconds of failures: the scheduler retries the refused pods with
	// back-off all along.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		check("while bindings fail", 30*time.Second)
		time.Sleep(time.Second)
	}
	pods, err := cp.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refused, bound := 0, 0
	for _, p := range pods.Items {
		if p.Namespace != gangs && p.Namespace != quota {
			continue
		}
		if p.Spec.NodeName != "" {
			bound++
			if chaos.Refused(p.Name) {
				t.Errorf("pod %s/%s was bound while its Bindings were being refused", p.Namespace, p.Name)
			}
		} else if chaos.Refused(p.Name) {
			refused++
		}
	}
	t.Logf("after 10s of failing bindings: %d pods bound, %d waiting with refused bindings", bound, refused)

	if err := faults.Set(ctx, false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for g := 0; g < 3; g++ {
		for m := 0; m < 4; m++ {
			waitBound(t, gangs, fmt.Sprintf("ddp-%d-m%d", g, m), 90*time.Second)
		}
	}
	for i := 0; i < 4; i++ {
		waitBound(t, gangs, fmt.Sprintf("share-%d", i), 60*time.Second)
	}
	var trained int
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		trained = boundIn(t, quota)
		return trained == 5, nil
	})
	if err != nil {
		t.Errorf("%d of the 8 two-GPU pods under a 10-GPU max bound after bindings recovered, want 5", trained)
	}
	r := check("after bindings recovered", 5*time.Second)
	t.Logf("bindings recovered: every gang and share bound, %d of 8 quota-limited pods, %.1fs; audit of %d pods (%d bound): %d violations", trained, time.Since(start).Seconds(), r.Pods, r.Bound, len(r.Violations))
}

// TestAuditFindsViolations plants each violation the audit looks for, by
// hand (pods created already bound, as no scheduler would bind them), and
// checks it is reported: the audit the chaos tests trust can fail.
func TestAuditFindsViolations(t *testing.T) {
	installCRDs(t)
	ctx := context.Background()
	createNodes(t, nodeSpec{name: "audit-node", cpu: "8", memory: "32Gi", gpus: 2})
	ns := newNamespace(t)
	createQuota(t, ns, nil, gpus(1))
	createPodGroup(t, ns, "half", 3, 60, nil)
	bound := func(name string, gpuCount int64, annotations, labels map[string]string) {
		t.Helper()
		p := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations, Labels: labels},
			Spec: v1.PodSpec{NodeName: "audit-node", Containers: []v1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Limits: gpus(gpuCount), Requests: gpus(gpuCount)}}}},
		}
		if _, err := cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gpu0 := map[string]string{"tessera.dev/gpu-assignment": `{"v":1,"gpus":[0]}`}
	bound("first", 1, gpu0, nil)
	bound("second", 1, gpu0, map[string]string{"scheduling.x-k8s.io/pod-group": "half"})
	r, err := audit.Check(ctx, cp.Config, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"node audit-node: pod " + ns + "/second over-allocates",
		"ElasticQuota " + ns + "/quota: bound pods use 2 of nvidia.com/gpu, over max 1",
		"PodGroup " + ns + "/half: 1 of minMember 3 bound",
	}
	for _, w := range want {
		found := false
		for _, v := range r.Violations {
			found = found || strings.Contains(v, w)
		}
		if !found {
			t.Errorf("the audit did not report %q; it found %v", w, r.Violations)
		}
	}
}
