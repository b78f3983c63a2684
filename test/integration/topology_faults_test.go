package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// TestContradictoryTopology: the agent's NodeGPUTopology disagrees with the
// node. It reports 4 GPUs where the node advertises 8: Tessera places on
// the 4 it knows and refuses a 4-GPU pod the node's count would admit.
// Then the GPUs a bound pod holds disappear from the topology (a GPU fell
// off the bus): the pod is accounted conservatively, no new GPU pod is
// placed on the node meanwhile, the scheduler keeps scheduling, and once
// the topology is whole again the waiting pod gets a GPU the first pod does
// not hold.
func TestContradictoryTopology(t *testing.T) {
	installCRDs(t)
	numa := func(n int32) *int32 { return &n }
	gpus := func(idx ...int32) []tesserav1alpha1.GPUDevice {
		var out []tesserav1alpha1.GPUDevice
		for _, i := range idx {
			out = append(out, tesserav1alpha1.GPUDevice{Index: i, UUID: fmt.Sprintf("GPU-%d", i), Product: "NVIDIA-H100-80GB-HBM3", NUMANode: numa(i / 4), NVLinkDomain: "nvswitch-0"})
		}
		return out
	}
	topo := &tesserav1alpha1.NodeGPUTopology{ObjectMeta: metav1.ObjectMeta{Name: "shrink-node"}}
	topo.Spec.GPUs = gpus(0, 1, 2, 3)
	publishTopology(t, topo)
	createNodes(t, nodeSpec{name: "shrink-node", cpu: "96", memory: "1Ti", gpus: 8, labels: h100Labels})
	startScheduler(t, cp.Config, schedulerConfig(t))
	ns := newNamespace(t)

	createPod(t, ns, podSpec{name: "pair", schedulerName: "tessera-scheduler", gpus: 2})
	pair := assignmentOf(t, waitBound(t, ns, "pair", 60*time.Second))
	for _, g := range pair.GPUs {
		if g > 3 {
			t.Fatalf("pair got GPU %d, which the topology does not list", g)
		}
	}
	createPod(t, ns, podSpec{name: "quad", schedulerName: "tessera-scheduler", gpus: 4})
	waitCondition(t, ns, "quad", "GPU", 30*time.Second)

	// The GPUs pair holds vanish from the topology.
	var left []int32
	for i := int32(0); i < 4; i++ {
		if !slices.Contains(pair.GPUs, int(i)) {
			left = append(left, i)
		}
	}
	updateTopology(t, "shrink-node", gpus(left...))
	// The scheduler's watch must see the shrink before the next pod comes;
	// nothing outside the scheduler can observe that, so allow it a second.
	time.Sleep(time.Second)
	createPod(t, ns, podSpec{name: "one", schedulerName: "tessera-scheduler", gpus: 1})
	waitCondition(t, ns, "one", "GPU", 30*time.Second)
	createPod(t, ns, podSpec{name: "cpu-only", schedulerName: "tessera-scheduler"})
	waitBound(t, ns, "cpu-only", 30*time.Second)
	time.Sleep(2 * time.Second)
	if p, err := cp.Client.CoreV1().Pods(ns).Get(context.Background(), "one", metav1.GetOptions{}); err != nil || p.Spec.NodeName != "" {
		t.Fatalf("one: %v, bound to %q while the node's GPUs are all held as far as Tessera can tell", err, p.Spec.NodeName)
	}

	// The topology is whole again.
	updateTopology(t, "shrink-node", gpus(0, 1, 2, 3, 4, 5, 6, 7))
	one := assignmentOf(t, waitBound(t, ns, "one", 60*time.Second))
	for _, g := range one.GPUs {
		if slices.Contains(pair.GPUs, g) {
			t.Errorf("one got GPU %d, which pair holds (%v)", g, pair.GPUs)
		}
	}
}

// updateTopology replaces a NodeGPUTopology's GPUs, as the agent would
// after it rediscovers the node.
func updateTopology(t *testing.T, name string, gpus []tesserav1alpha1.GPUDevice) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(cp.Config)
	gvr := tesserav1alpha1.NodeGPUTopologyResource
	ctx := context.Background()
	obj, err := dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var topo tesserav1alpha1.NodeGPUTopology
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &topo); err != nil {
		t.Fatal(err)
	}
	topo.Spec.GPUs = gpus
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&topo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(gvr).Update(ctx, &unstructured.Unstructured{Object: m}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
