package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/gpu"
)

// installCRDs installs the shipped CRDs and namespace (idempotent).
func installCRDs(t *testing.T) {
	t.Helper()
	applyObjects(t, namespaceAndCRDs(t), false)
}

// publishTopology creates a NodeGPUTopology as tessera-agent would.
func publishTopology(t *testing.T, obj *tesserav1alpha1.NodeGPUTopology) {
	t.Helper()
	obj.APIVersion, obj.Kind = tesserav1alpha1.SchemeGroupVersion.String(), "NodeGPUTopology"
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(cp.Config)
	gvr := tesserav1alpha1.NodeGPUTopologyResource
	if _, err := dyn.Resource(gvr).Create(context.Background(), &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(gvr).Delete(context.Background(), obj.Name, metav1.DeleteOptions{})
	})
}

// assignmentOf reads the devices PreBind wrote on a pod.
func assignmentOf(t *testing.T, pod *v1.Pod) gpu.Assignment {
	t.Helper()
	raw, ok := pod.Annotations[gpu.AnnotationAssignment]
	if !ok {
		t.Fatalf("pod %s bound without %s", pod.Name, gpu.AnnotationAssignment)
	}
	a, err := gpu.UnmarshalAssignment(raw)
	if err != nil {
		t.Fatalf("pod %s: %v", pod.Name, err)
	}
	return a
}

func schedulerConfig(t *testing.T) []byte {
	return readManifest(t, "base/scheduler-config.yaml")
}

// schedulerConfigWith is the shipped configuration with the text old
// replaced by new, for tests of a setting other than the shipped one; it
// fails when the shipped file no longer holds old.
func schedulerConfigWith(t *testing.T, old, new string) []byte {
	t.Helper()
	shipped := string(schedulerConfig(t))
	if !strings.Contains(shipped, old) {
		t.Fatalf("the shipped configuration no longer holds %q", old)
	}
	return []byte(strings.Replace(shipped, old, new, 1))
}

// TestGPUPlacementTopologyAndRestart: a node whose agent reports two NVLink
// cliques of four GPUs (one per NUMA node). A 2-GPU pod takes two GPUs of
// one clique; a 4-GPU pod that requires locality then gets the whole other
// clique. After a scheduler restart (the in-memory ledger is gone), a new
// 2-GPU pod gets the two GPUs still free — never one that is held.
func TestGPUPlacementTopologyAndRestart(t *testing.T) {
	installCRDs(t)
	numa := func(n int32) *int32 { return &n }
	topo := &tesserav1alpha1.NodeGPUTopology{ObjectMeta: metav1.ObjectMeta{Name: "topo-node"}}
	for i := int32(0); i < 8; i++ {
		clique := "clique-a"
		if i >= 4 {
			clique = "clique-b"
		}
		topo.Spec.GPUs = append(topo.Spec.GPUs, tesserav1alpha1.GPUDevice{
			Index: i, UUID: fmt.Sprintf("GPU-%d", i), Product: "NVIDIA-H100-80GB-HBM3", NUMANode: numa(i / 4), NVLinkDomain: clique,
		})
	}
	publishTopology(t, topo)
	createNodes(t, nodeSpec{name: "topo-node", cpu: "96", memory: "1Ti", gpus: 8,
		labels: map[string]string{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}})

	sched := startScheduler(t, cp.Config, schedulerConfig(t))
	ns := newNamespace(t)
	createPod(t, ns, podSpec{name: "pair", schedulerName: "tessera-scheduler", gpus: 2})
	pair := assignmentOf(t, waitBound(t, ns, "pair", 60*time.Second))
	createPod(t, ns, podSpec{name: "quad", schedulerName: "tessera-scheduler", gpus: 4,
		annotations: map[string]string{"tessera.dev/gpu-topology": "required"}})
	quad := assignmentOf(t, waitBound(t, ns, "quad", 60*time.Second))

	clique := func(g int) string { return topo.Spec.GPUs[g].NVLinkDomain }
	if len(pair.GPUs) != 2 || clique(pair.GPUs[0]) != clique(pair.GPUs[1]) {
		t.Errorf("2-GPU pod got %v, not two GPUs of one clique", pair.GPUs)
	}
	if len(quad.GPUs) != 4 {
		t.Fatalf("4-GPU pod got %v", quad.GPUs)
	}
	for _, g := range quad.GPUs {
		if clique(g) != clique(quad.GPUs[0]) || clique(g) == clique(pair.GPUs[0]) {
			t.Errorf("4-GPU pod got %v: not the free clique (pair holds %v)", quad.GPUs, pair.GPUs)
		}
	}
	if len(quad.UUIDs) != 4 || !strings.HasPrefix(quad.UUIDs[0], "GPU-") {
		t.Errorf("assignment lacks the GPUs' UUIDs from the NodeGPUTopology: %+v", quad)
	}

	sched.Stop()
	startScheduler(t, cp.Config, schedulerConfig(t))
	createPod(t, ns, podSpec{name: "after-restart", schedulerName: "tessera-scheduler", gpus: 2})
	after := assignmentOf(t, waitBound(t, ns, "after-restart", 60*time.Second))
	held := map[int]bool{}
	for _, g := range append(append([]int{}, pair.GPUs...), quad.GPUs...) {
		held[g] = true
	}
	for _, g := range after.GPUs {
		if held[g] {
			t.Errorf("after restart GPU %d given again (held: pair %v, quad %v; new %v)", g, pair.GPUs, quad.GPUs, after.GPUs)
		}
	}

	// The node is now full: one more GPU pod must wait, with GPUPlacement's
	// reason in its condition.
	createPod(t, ns, podSpec{name: "no-room", schedulerName: "tessera-scheduler", gpus: 1})
	cond := waitUnschedulable(t, ns, "no-room", 60*time.Second)
	if !strings.Contains(strings.ToLower(cond.Message), "gpu") {
		t.Errorf("pending reason does not mention GPUs: %q", cond.Message)
	}
}

// TestGPUPlacementMIGAndShares: MIG pods get legal, non-overlapping slots on
// a MIG node; GPU shares are packed per GPU and never exceed one GPU.
func TestGPUPlacementMIGAndShares(t *testing.T) {
	createNodes(t,
		nodeSpec{name: "mig-node", cpu: "96", memory: "1Ti",
			labels: map[string]string{"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/mig.strategy": "mixed"},
			extra: v1.ResourceList{
				"nvidia.com/mig-3g.40gb": resource.MustParse("2"),
				"nvidia.com/mig-1g.10gb": resource.MustParse("7"),
			}},
		nodeSpec{name: "share-node", cpu: "32", memory: "128Gi", gpus: 1,
			labels: map[string]string{"nvidia.com/gpu.product": "NVIDIA-A100-PCIE-40GB"}},
	)
	startScheduler(t, cp.Config, schedulerConfig(t))
	ns := newNamespace(t)

	for i := 0; i < 3; i++ {
		createPodWith(t, ns, fmt.Sprintf("mig-1g-%d", i), v1.ResourceList{"nvidia.com/mig-1g.10gb": resource.MustParse("1")}, nil)
	}
	createPodWith(t, ns, "mig-3g", v1.ResourceList{"nvidia.com/mig-3g.40gb": resource.MustParse("1")}, nil)
	product, _ := gpu.LookupProduct("NVIDIA-A100-SXM4-80GB")
	var slots []gpu.MIGSlot
	for _, name := range []string{"mig-1g-0", "mig-1g-1", "mig-1g-2", "mig-3g"} {
		pod := waitBound(t, ns, name, 60*time.Second)
		if pod.Spec.NodeName != "mig-node" {
			t.Fatalf("%s on %s", name, pod.Spec.NodeName)
		}
		a := assignmentOf(t, pod)
		if len(a.MIG) != 1 {
			t.Fatalf("%s: assignment %+v", name, a)
		}
		p, ok := product.Profile(a.MIG[0].Profile)
		if !ok || !p.LegalStart(a.MIG[0].Start) {
			t.Errorf("%s: illegal slot %+v", name, a.MIG[0])
		}
		slots = append(slots, a.MIG[0])
	}
	// Rebuilding a MIG-dynamic model of the node from the slots must not
	// find any overlap.
	model := gpu.NewNodeState(gpu.Topology{GPUs: []gpu.GPU{
		{Index: 0, Product: product.Name, NUMANode: -1, MIG: gpu.MIGDynamic},
		{Index: 1, Product: product.Name, NUMANode: -1, MIG: gpu.MIGDynamic},
	}})
	for _, s := range slots {
		if err := model.Add(gpu.Assignment{MIG: []gpu.MIGSlot{s}}); err != nil {
			t.Errorf("overlapping MIG slots %v: %v", slots, err)
		}
	}

	shares := map[string]string{"share-a": "500", "share-b": "400", "share-c": "200"}
	for name, milli := range shares {
		createPodWith(t, ns, name, nil, map[string]string{"tessera.dev/gpu-milli": milli})
	}
	total := 0
	placed := 0
	deadline := time.Now().Add(60 * time.Second)
	for placed+1 < len(shares) && time.Now().Before(deadline) {
		placed, total = 0, 0
		for name := range shares {
			pod, err := cp.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
			if err == nil && pod.Spec.NodeName != "" {
				placed++
				for _, s := range assignmentOf(t, pod).Shares {
					total += s.Milli
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if placed != 2 || total > 1000 {
		t.Errorf("%d shares placed holding %d milli of one GPU; want 2 placed, at most 1000", placed, total)
	}
}

// TestGPUPlacementMalformedAnnotation: a bad share annotation leaves the pod
// Pending with a reason and an Event that name the annotation.
func TestGPUPlacementMalformedAnnotation(t *testing.T) {
	createNodes(t, nodeSpec{name: "bad-input-node", cpu: "8", memory: "32Gi", gpus: 1})
	startScheduler(t, cp.Config, schedulerConfig(t))
	ns := newNamespace(t)
	createPodWith(t, ns, "bad-share", nil, map[string]string{"tessera.dev/gpu-milli": "half"})
	cond := waitUnschedulable(t, ns, "bad-share", 60*time.Second)
	if !strings.Contains(cond.Message, "tessera.dev/gpu-milli") || !strings.Contains(cond.Message, `"half"`) {
		t.Errorf("condition message %q does not name the annotation and value", cond.Message)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := cp.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "bad-share" && e.Reason == "FailedScheduling" && strings.Contains(e.Note, "tessera.dev/gpu-milli") {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no FailedScheduling event naming the annotation: %v", err)
	}
}

func createPodWith(t *testing.T, ns, name string, limits v1.ResourceList, annotations map[string]string) {
	t.Helper()
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec: v1.PodSpec{
			SchedulerName: "tessera-scheduler",
			Containers: []v1.Container{{
				Name: "main", Image: "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Limits: limits, Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m")}},
			}},
		},
	}
	if _, err := cp.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitUnschedulable waits for the scheduler to give up on a pod for now and
// returns its PodScheduled condition.
func waitUnschedulable(t *testing.T, ns, name string, timeout time.Duration) v1.PodCondition {
	t.Helper()
	return waitCondition(t, ns, name, "", timeout)
}

// waitCondition waits until the pod has a PodScheduled=False condition
// whose message contains want, and returns it; it fails if the pod is bound
// first, naming the last message seen.
func waitCondition(t *testing.T, ns, name, want string, timeout time.Duration) v1.PodCondition {
	t.Helper()
	var cond v1.PodCondition
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if p.Spec.NodeName != "" {
			return false, fmt.Errorf("pod %s was bound to %s", name, p.Spec.NodeName)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
				cond = c
			}
		}
		return cond.Type != "" && strings.Contains(cond.Message, want), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: no PodScheduled=False message containing %q: %v (last: %q)", ns, name, want, err, cond.Message)
	}
	return cond
}
