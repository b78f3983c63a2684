//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/typed/scheduling/v1alpha1"

	"github.com/tessera-sched/tessera/manifests/render"
	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/audit"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// harness is the pinned-fault tests' cluster: a real API server and etcd
// (optionally behind an EtcdProxy), the CRDs, simulated kubelets, 8-GPU
// nodes, and two tessera-scheduler processes with leader election on, which
// a supervisor restarts when they exit (as a Deployment's kubelet would:
// a scheduler that loses its lease exits).
type harness struct {
	t      *testing.T
	ctx    context.Context
	cp     *localcluster.ControlPlane
	sched  schedclient.SchedulingV1alpha1Interface
	bin    string
	config string
	dir    string

	mu       sync.Mutex
	replicas []*replica
	stopped  bool
	restarts int
}

func newHarness(t *testing.T, nodes int, proxy *localcluster.EtcdProxy) *harness {
	t.Helper()
	bin := os.Getenv("TESSERA_CHAOS_BIN")
	if bin == "" {
		bin = "../../bin"
	}
	scheduler, err := filepath.Abs(filepath.Join(bin, "tessera-scheduler"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(scheduler); err != nil {
		t.Fatalf("the chaos tests run the tessera-scheduler binary: %v (make build, or set TESSERA_CHAOS_BIN)", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	cp := startCluster(t, ctx, dir, nodes, "node", proxy)
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tessera-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	jsonCfg := rest.CopyConfig(cp.Config)
	jsonCfg.ContentType = "application/json"
	h := &harness{t: t, ctx: ctx, cp: cp, sched: versioned.NewForConfigOrDie(jsonCfg).SchedulingV1alpha1(), bin: scheduler, dir: dir}
	h.config = schedulerConfig(t, cp.Kubeconfig, dir)
	h.replicas = []*replica{startReplica(t, scheduler, h.config, dir, 0), startReplica(t, scheduler, h.config, dir, 1)}
	go h.supervise()
	t.Cleanup(func() {
		h.mu.Lock()
		h.stopped = true
		rs := h.replicas
		h.mu.Unlock()
		for _, r := range rs {
			r.kill()
		}
		if t.Failed() {
			for _, r := range rs {
				t.Logf("log of replica %d (%s), last lines:\n%s", r.index, r.log, tail(r.log, 40))
			}
		}
	})
	return h
}

// startCluster starts the API server and etcd (behind proxy if set),
// installs the CRDs, simulates kubelets and creates nodes 8-GPU H100 nodes
// named <prefix>-<i>.
func startCluster(t *testing.T, ctx context.Context, dir string, nodes int, prefix string, proxy *localcluster.EtcdProxy) *localcluster.ControlPlane {
	t.Helper()
	cp, err := localcluster.Start(t, localcluster.Options{Dir: filepath.Join(dir, "cluster"), EtcdProxy: proxy})
	if err != nil {
		t.Fatal(err)
	}
	crds, err := render.Kustomization("crds", render.Overlay{})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := localcluster.DecodeYAML(crds)
	if err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Apply(ctx, cp.Config, objs, false); err != nil {
		t.Fatal(err)
	}
	go localcluster.SimulateKubelets(ctx, cp.Client)
	for i := 0; i < nodes; i++ {
		capacity := v1.ResourceList{
			v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("512Gi"),
			v1.ResourcePods: resource.MustParse("110"), "nvidia.com/gpu": resource.MustParse("8"),
		}
		name := fmt.Sprintf("%s-%d", prefix, i)
		node := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				"kubernetes.io/hostname": name, "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8",
			}},
			Status: v1.NodeStatus{Capacity: capacity, Allocatable: capacity, Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}},
		}
		if err := localcluster.CreateNode(ctx, cp.Client, node); err != nil {
			t.Fatal(err)
		}
	}
	return cp
}

// supervise restarts a replica that exited, after a second.
func (h *harness) supervise() {
	for h.ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		h.mu.Lock()
		if h.stopped {
			h.mu.Unlock()
			return
		}
		for i, r := range h.replicas {
			select {
			case <-r.done:
				h.replicas[i] = startReplica(h.t, h.bin, h.config, h.dir, i)
				h.restarts++
			default:
			}
		}
		h.mu.Unlock()
	}
}

// killAll SIGKILLs every replica at once: no scheduler is left, no lease
// released; the supervisor starts them again.
func (h *harness) killAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.replicas {
		r.kill()
	}
}

func (h *harness) namespace(name string) {
	h.t.Helper()
	if _, err := h.cp.Client.CoreV1().Namespaces().Create(h.ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) quota(ns string, min, max int64) {
	h.t.Helper()
	q := func(n int64) v1.ResourceList {
		return v1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(n, resource.DecimalSI)}
	}
	eq := &schedv1alpha1.ElasticQuota{ObjectMeta: metav1.ObjectMeta{Name: "quota", Namespace: ns}, Spec: schedv1alpha1.ElasticQuotaSpec{Min: q(min), Max: q(max)}}
	if _, err := h.sched.ElasticQuotas(ns).Create(h.ctx, eq, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

// dynamicMIGNode creates a node of gpus MIG-enabled A100-80GB GPUs with no
// instances, published MIG-dynamic in its NodeGPUTopology and advertising
// every legal slot of every profile, as tessera-agent --mig-layout=dynamic
// does: the scheduler chooses each instance's start.
func (h *harness) dynamicMIGNode(name string, gpus int) {
	h.t.Helper()
	product, _ := gpu.LookupProduct("NVIDIA-A100-SXM4-80GB")
	capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("512Gi"), v1.ResourcePods: resource.MustParse("110")}
	topo := &tesserav1alpha1.NodeGPUTopology{
		TypeMeta:   metav1.TypeMeta{APIVersion: tesserav1alpha1.SchemeGroupVersion.String(), Kind: "NodeGPUTopology"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}
	for i := 0; i < gpus; i++ {
		topo.Spec.GPUs = append(topo.Spec.GPUs, tesserav1alpha1.GPUDevice{
			Index: int32(i), UUID: fmt.Sprintf("GPU-%s-%d", name, i), Product: product.Name, NUMANode: ptr.To[int32](0),
			MIG: &tesserav1alpha1.MIGConfig{Mode: tesserav1alpha1.MIGDynamic},
		})
	}
	for _, p := range product.MIGProfiles {
		capacity[v1.ResourceName(gpu.MIGResourceName(p.Name))] = *resource.NewQuantity(int64(gpus*len(p.Starts)), resource.DecimalSI)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(topo)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := dynamic.NewForConfigOrDie(h.cp.Config).Resource(tesserav1alpha1.NodeGPUTopologyResource).Create(h.ctx, &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "nvidia.com/gpu.product": product.Name, "nvidia.com/gpu.count": fmt.Sprint(gpus), "nvidia.com/mig.strategy": "mixed",
		}},
		Status: v1.NodeStatus{Capacity: capacity, Allocatable: capacity, Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}},
	}
	if err := localcluster.CreateNode(h.ctx, h.cp.Client, node); err != nil {
		h.t.Fatal(err)
	}
}

// pod creates a pod asking for gpus whole GPUs, in group if set, changed
// by each of mutate before it is created.
func (h *harness) pod(ns, name string, gpus int64, group string, mutate ...func(*v1.Pod)) {
	h.t.Helper()
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{}},
		Spec: v1.PodSpec{SchedulerName: "tessera-scheduler", TerminationGracePeriodSeconds: ptr.To[int64](0), Containers: []v1.Container{{
			Name: "main", Image: "registry.k8s.io/pause:3.10",
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m")}, Limits: v1.ResourceList{}},
		}}},
	}
	if gpus > 0 {
		p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = *resource.NewQuantity(gpus, resource.DecimalSI)
	}
	if group != "" {
		p.Labels[schedv1alpha1.PodGroupLabel] = group
	}
	for _, m := range mutate {
		m(p)
	}
	// Retried: during an etcd fault the API server answers slowly or
	// with a timeout, and a pod that was created meanwhile is fine.
	err := wait.PollUntilContextTimeout(h.ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := h.cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err == nil {
			return true, nil
		}
		if _, getErr := h.cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); getErr == nil {
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		h.t.Fatalf("creating pod %s/%s: %v", ns, name, err)
	}
}

// gang creates a PodGroup of size members and its pods.
func (h *harness) gang(ns, name string, size int, gpus int64) []string {
	h.t.Helper()
	timeout := int32(60)
	if _, err := h.sched.PodGroups(ns).Create(h.ctx, &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: schedv1alpha1.PodGroupSpec{MinMember: int32(size), ScheduleTimeoutSeconds: &timeout}}, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	var names []string
	for m := 0; m < size; m++ {
		n := fmt.Sprintf("%s-%d", name, m)
		h.pod(ns, n, gpus, name)
		names = append(names, n)
	}
	return names
}

// bound counts the named pods of ns that have a node.
func (h *harness) bound(ns string, names []string) int {
	n := 0
	for _, name := range names {
		if p, err := h.cp.Client.CoreV1().Pods(ns).Get(h.ctx, name, metav1.GetOptions{}); err == nil && p.Spec.NodeName != "" {
			n++
		}
	}
	return n
}

// waitBound waits until every named pod of ns is bound and returns how
// long that took.
func (h *harness) waitBound(ns string, names []string, timeout time.Duration) time.Duration {
	h.t.Helper()
	start := time.Now()
	if err := wait.PollUntilContextTimeout(h.ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return h.bound(ns, names) == len(names), nil
	}); err != nil {
		h.t.Fatalf("%d of %d pods of %s bound after %s", h.bound(ns, names), len(names), ns, timeout)
	}
	return time.Since(start)
}

// audit fails the test on any violation of the invariants, once the
// cluster has had up to settle to converge.
func (h *harness) audit(when string, settle time.Duration) {
	h.t.Helper()
	var last *audit.Report
	err := wait.PollUntilContextTimeout(h.ctx, time.Second, settle, true, func(ctx context.Context) (bool, error) {
		r, err := audit.Check(ctx, h.cp.Config, audit.Options{GangGrace: 15 * time.Second})
		if err != nil {
			return false, nil
		}
		last = r
		return len(r.Violations) == 0, nil
	})
	if err != nil {
		if last == nil {
			h.t.Errorf("audit %s: no answer from the API server", when)
			return
		}
		for _, v := range last.Violations {
			h.t.Errorf("audit %s: %s", when, v)
		}
	}
}
