package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// createQuota creates an ElasticQuota in ns.
func createQuota(t *testing.T, ns string, min, max v1.ResourceList) {
	t.Helper()
	cfg := rest.CopyConfig(cp.Config)
	cfg.ContentType = "application/json"
	client := versioned.NewForConfigOrDie(cfg)
	eq := &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "quota", Namespace: ns},
		Spec:       schedv1alpha1.ElasticQuotaSpec{Min: min, Max: max},
	}
	if _, err := client.SchedulingV1alpha1().ElasticQuotas(ns).Create(context.Background(), eq, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The test API server runs no namespace controller, so a deleted
	// namespace keeps its objects; a quota left behind would still lend
	// and guarantee in the next test.
	t.Cleanup(func() {
		_ = client.SchedulingV1alpha1().ElasticQuotas(ns).Delete(context.Background(), "quota", metav1.DeleteOptions{})
	})
}

func gpus(n int64) v1.ResourceList {
	return v1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(n, resource.DecimalSI)}
}

func boundIn(t *testing.T, ns string) int {
	t.Helper()
	n, err := localcluster.CountBound(context.Background(), cp.Client, ns)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQuotaBorrowingUpToMax: a namespace borrows idle, unguaranteed
// capacity up to its max and no further; the pod above max waits with a
// reason naming the namespace, resource and numbers.
func TestQuotaBorrowingUpToMax(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "quota-node-1", cpu: "64", memory: "256Gi", gpus: 8})
	a, b := newNamespace(t), newNamespace(t)
	createQuota(t, a, gpus(2), gpus(6))
	createQuota(t, b, gpus(2), gpus(4))
	startScheduler(t, cp.Config, schedulerConfig(t))

	for i := 0; i < 6; i++ {
		createPod(t, a, podSpec{name: fmt.Sprintf("a-%d", i), schedulerName: "tessera-scheduler", gpus: 1})
	}
	for i := 0; i < 6; i++ {
		waitBound(t, a, fmt.Sprintf("a-%d", i), 60*time.Second)
	}
	createPod(t, a, podSpec{name: "a-over-max", schedulerName: "tessera-scheduler", gpus: 1})
	cond := waitUnschedulable(t, a, "a-over-max", 60*time.Second)
	for _, want := range []string{a, "nvidia.com/gpu", "max"} {
		if !strings.Contains(cond.Message, want) {
			t.Errorf("reason %q lacks %q", cond.Message, want)
		}
	}
	// Namespace b still gets its guaranteed 2.
	for i := 0; i < 2; i++ {
		createPod(t, b, podSpec{name: fmt.Sprintf("b-%d", i), schedulerName: "tessera-scheduler", gpus: 1})
		waitBound(t, b, fmt.Sprintf("b-%d", i), 60*time.Second)
	}
	// The scheduler keeps status.used current, recomputed from pods.
	waitQuotaUsed(t, a, "nvidia.com/gpu: 6", func(used v1.ResourceList) bool {
		q := used["nvidia.com/gpu"]
		return q.Value() == 6
	})
}

// waitQuotaUsed waits until the status.used of the quota named "quota" in
// ns satisfies ok, and fails naming the last value seen.
func waitQuotaUsed(t *testing.T, ns, what string, ok func(v1.ResourceList) bool) {
	t.Helper()
	eqClient := versioned.NewForConfigOrDie(jsonConfig())
	var used v1.ResourceList
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		eq, err := eqClient.SchedulingV1alpha1().ElasticQuotas(ns).Get(ctx, "quota", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		used = eq.Status.Used
		return ok(used), nil
	})
	if err != nil {
		t.Fatalf("status.used of %s is %v, want %s", ns, used, what)
	}
}

// TestQuotaMaxNeverExceededUnderRace: 200 one-GPU pods from 4 namespaces
// (max 3 GPUs each) are created at once on a cluster with room for all of
// them; a watch checks after every binding that no namespace ever has more
// than its max bound.
func TestQuotaMaxNeverExceededUnderRace(t *testing.T) {
	installCRDs(t)
	for i := 0; i < 4; i++ {
		createNodes(t, nodeSpec{name: fmt.Sprintf("race-node-%d", i), cpu: "64", memory: "256Gi", gpus: 64})
	}
	var namespaces []string
	for i := 0; i < 4; i++ {
		ns := newNamespace(t)
		namespaces = append(namespaces, ns)
		createQuota(t, ns, gpus(1), gpus(3))
	}
	startScheduler(t, cp.Config, schedulerConfig(t))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	bound := map[string]map[string]bool{}
	var violations []string
	stopWatch := watchBindings(t, metav1.NamespaceAll, func(pod *v1.Pod) {
		if !strings.HasPrefix(pod.Name, "race-") {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if bound[pod.Namespace] == nil {
			bound[pod.Namespace] = map[string]bool{}
		}
		bound[pod.Namespace][pod.Name] = true
		if n := len(bound[pod.Namespace]); n > 3 {
			violations = append(violations, fmt.Sprintf("%s has %d pods bound, max 3", pod.Namespace, n))
		}
	})

	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			createPod(t, namespaces[i%4], podSpec{name: fmt.Sprintf("race-%d", i), schedulerName: "tessera-scheduler", gpus: 1})
		}(i)
	}
	wg.Wait()
	// Every namespace reaches its max, and stays there.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, ns := range namespaces {
			if boundIn(t, ns) < 3 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("namespaces did not reach their max: %v", err)
	}
	time.Sleep(2 * time.Second)
	stopWatch()
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("quota max exceeded: %v", violations)
	}
	for _, ns := range namespaces {
		if n := boundIn(t, ns); n != 3 {
			t.Errorf("%s: %d pods bound, want exactly its max 3", ns, n)
		}
	}
}

// TestQuotaGPUEquivalents: a namespace given "1 GPU" as tessera.dev/gpu may
// hold a 3g MIG slice (3/7) and a half-GPU share (0.5) — 0.93 GPU — but not
// one more 200m share.
func TestQuotaGPUEquivalents(t *testing.T) {
	installCRDs(t)
	createNodes(t,
		nodeSpec{name: "eq-mig-node", cpu: "32", memory: "128Gi",
			labels: map[string]string{"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/mig.strategy": "mixed"},
			extra:  v1.ResourceList{"nvidia.com/mig-3g.40gb": resource.MustParse("2")}},
		nodeSpec{name: "eq-gpu-node", cpu: "32", memory: "128Gi", gpus: 2},
	)
	ns := newNamespace(t)
	createQuota(t, ns, nil, v1.ResourceList{"tessera.dev/gpu": resource.MustParse("1")})
	startScheduler(t, cp.Config, schedulerConfig(t))

	createPodWith(t, ns, "mig", v1.ResourceList{"nvidia.com/mig-3g.40gb": resource.MustParse("1")}, nil)
	waitBound(t, ns, "mig", 60*time.Second)
	createPodWith(t, ns, "half", nil, map[string]string{"tessera.dev/gpu-milli": "500"})
	waitBound(t, ns, "half", 60*time.Second)
	createPodWith(t, ns, "fifth", nil, map[string]string{"tessera.dev/gpu-milli": "200"})
	cond := waitUnschedulable(t, ns, "fifth", 60*time.Second)
	if !strings.Contains(cond.Message, "tessera.dev/gpu") {
		t.Errorf("reason %q does not name the GPU-equivalent resource", cond.Message)
	}
}

// TestQuotaInvalidObject: the shipped CRD's CEL rules refuse min above max
// and negative amounts with a message naming the field. Two ElasticQuotas
// in one namespace (which no per-object rule can see) get a Warning Event
// naming both, and the namespace's pods wait with a reason instead of being
// scheduled unchecked.
func TestQuotaInvalidObject(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "bad-quota-node", cpu: "16", memory: "64Gi", gpus: 4})
	ns := newNamespace(t)
	client := versioned.NewForConfigOrDie(jsonConfig())
	for _, c := range []struct {
		name     string
		min, max v1.ResourceList
		want     string
	}{
		{"min-above-max", gpus(4), gpus(2), "spec.min[nvidia.com/gpu] must not be greater than spec.max"},
		{"negative", gpus(-1), nil, "spec.min quantities must not be negative"},
	} {
		eq := &schedv1alpha1.ElasticQuota{
			ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: ns},
			Spec:       schedv1alpha1.ElasticQuotaSpec{Min: c.min, Max: c.max},
		}
		_, err := client.SchedulingV1alpha1().ElasticQuotas(ns).Create(context.Background(), eq, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("creating %s: error %v, want one containing %q", c.name, err, c.want)
		}
	}

	createQuota(t, ns, gpus(2), gpus(4))
	second := &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "second", Namespace: ns},
		Spec:       schedv1alpha1.ElasticQuotaSpec{Max: gpus(8)},
	}
	if _, err := client.SchedulingV1alpha1().ElasticQuotas(ns).Create(context.Background(), second, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.SchedulingV1alpha1().ElasticQuotas(ns).Delete(context.Background(), "second", metav1.DeleteOptions{})
	})
	startScheduler(t, cp.Config, schedulerConfig(t))

	createPod(t, ns, podSpec{name: "waits", schedulerName: "tessera-scheduler", gpus: 1})
	cond := waitUnschedulable(t, ns, "waits", 60*time.Second)
	if !strings.Contains(cond.Message, "2 ElasticQuotas") {
		t.Errorf("pending reason %q does not explain the duplicate quotas", cond.Message)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := cp.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, e := range evs.Items {
			if e.Reason == "InvalidElasticQuota" && e.Regarding.Kind == "ElasticQuota" && strings.Contains(e.Note, `"`+ns+`/second"`) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no InvalidElasticQuota event naming the duplicate: %v", err)
	}
}

// jsonConfig is the control plane's client config for custom resources,
// which do not speak protobuf.
func jsonConfig() *rest.Config {
	cfg := rest.CopyConfig(cp.Config)
	cfg.ContentType = "application/json"
	return cfg
}

// TestQuotaStatusUsedFromTheStart: status.used lists every resource of the
// quota's min and max, with zero quantities while nothing runs (clients
// that compare it exactly expect them, as scheduler-plugins' controller
// writes them), and a quota deleted and re-created under the same name
// gets its status again, although it equals the old object's last one.
func TestQuotaStatusUsedFromTheStart(t *testing.T) {
	installCRDs(t)
	ns := newNamespace(t)
	eqClient := versioned.NewForConfigOrDie(jsonConfig())
	startScheduler(t, cp.Config, schedulerConfig(t))
	limits := v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("8Gi"), "nvidia.com/gpu": resource.MustParse("2")}
	for round := 1; round <= 2; round++ {
		eq := &schedv1alpha1.ElasticQuota{ObjectMeta: metav1.ObjectMeta{Name: "quota", Namespace: ns}, Spec: schedv1alpha1.ElasticQuotaSpec{Min: limits, Max: limits}}
		if _, err := eqClient.SchedulingV1alpha1().ElasticQuotas(ns).Create(context.Background(), eq, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitQuotaUsed(t, ns, fmt.Sprintf("a zero for each of cpu, memory and nvidia.com/gpu (quota object %d)", round), func(used v1.ResourceList) bool {
			for name := range limits {
				if q, ok := used[name]; !ok || !q.IsZero() {
					return false
				}
			}
			return len(used) == len(limits)
		})
		if err := eqClient.SchedulingV1alpha1().ElasticQuotas(ns).Delete(context.Background(), "quota", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// Let the scheduler see the deletion before the object returns.
		time.Sleep(2 * time.Second)
	}
}

// TestQuotaBorrowingLimitedToUnusedMin: with borrowingLimit UnusedMin
// (scheduler-plugins' rule), a namespace borrows only what other quotas
// guarantee and leave unused, never capacity nobody is guaranteed: on 8
// GPUs with two quotas of min 2, A gets its 2 plus B's unused 2, and a
// fifth pod waits although 4 GPUs are idle. (The default lends those 4
// too; see TestQuotaBorrowingUpToMax.)
func TestQuotaBorrowingLimitedToUnusedMin(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "unusedmin-node", cpu: "64", memory: "256Gi", gpus: 8})
	a, b := newNamespace(t), newNamespace(t)
	createQuota(t, a, gpus(2), gpus(8))
	createQuota(t, b, gpus(2), gpus(8))
	startScheduler(t, cp.Config, schedulerConfigWith(t, "namespacesWithoutQuota: Ungoverned", "namespacesWithoutQuota: Ungoverned\n          borrowingLimit: UnusedMin"))
	for i := 0; i < 4; i++ {
		createPod(t, a, podSpec{name: fmt.Sprintf("a-%d", i), schedulerName: "tessera-scheduler", gpus: 1})
		waitBound(t, a, fmt.Sprintf("a-%d", i), 60*time.Second)
	}
	createPod(t, a, podSpec{name: "a-4", schedulerName: "tessera-scheduler", gpus: 1})
	cond := waitUnschedulable(t, a, "a-4", 60*time.Second)
	if !strings.Contains(cond.Message, "can be borrowed") {
		t.Errorf("a-4 waits, but not for lack of borrowable quota: %q", cond.Message)
	}
}
