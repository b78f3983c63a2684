package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// The gang tests below check that Gang's whole-group check sees the GPUs
// GPUPlacement's Filter sees: the node's agent publishes a topology that its
// labels alone would describe otherwise, and the group must be admitted
// exactly when its members then fit.

// TestGangWaitsWhereOnlyLabelsFit: the agent reports two NVLink cliques of
// four GPUs, while the labels describe one 8-GPU NVSwitch domain. With two
// GPUs of one clique held, a group of two members that each require three
// GPUs of one clique fits the labels (six free GPUs in one domain) but not
// the node: only one clique has three free GPUs. The group must wait for
// room as a whole ("1 fit"), not be admitted to a plan its second member
// then fails. Once the holder is gone, both members bind, each on a clique
// of its own.
func TestGangWaitsWhereOnlyLabelsFit(t *testing.T) {
	installCRDs(t)
	numa := func(n int32) *int32 { return &n }
	topo := &tesserav1alpha1.NodeGPUTopology{ObjectMeta: metav1.ObjectMeta{Name: "gang-cliques"}}
	for i := int32(0); i < 8; i++ {
		topo.Spec.GPUs = append(topo.Spec.GPUs, tesserav1alpha1.GPUDevice{
			Index: i, UUID: fmt.Sprintf("GPU-cliques-%d", i), Product: "NVIDIA-H100-80GB-HBM3", NUMANode: numa(i / 4),
			NVLinkDomain: []string{"clique-a", "clique-b"}[i/4],
		})
	}
	publishTopology(t, topo)
	createNodes(t, nodeSpec{name: "gang-cliques", cpu: "96", memory: "1Ti", gpus: 8,
		labels: map[string]string{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}})
	startScheduler(t, cp.Config, schedulerConfig(t))
	ns := newNamespace(t)

	createPod(t, ns, podSpec{name: "holder", schedulerName: "tessera-scheduler", gpus: 2})
	held := assignmentOf(t, waitBound(t, ns, "holder", 60*time.Second))
	if d := topo.Spec.GPUs[held.GPUs[0]].NVLinkDomain; d != topo.Spec.GPUs[held.GPUs[1]].NVLinkDomain {
		t.Fatalf("holder got GPUs %v across cliques", held.GPUs)
	}

	createPodGroup(t, ns, "triples", 2, 120, nil)
	members := []string{"triple-0", "triple-1"}
	for _, name := range members {
		createPod(t, ns, podSpec{name: name, schedulerName: "tessera-scheduler", gpus: 3,
			annotations: map[string]string{"tessera.dev/gpu-topology": "required"},
			labels:      map[string]string{schedv1alpha1.PodGroupLabel: "triples"}})
	}
	msg := waitCondition(t, ns, "triple-0", "waits for room", 60*time.Second).Message
	if !strings.Contains(msg, "2 more members need room at once, 1 fit") {
		t.Errorf("triple-0 waits, but not because only one member fits the published topology: %q", msg)
	}
	for _, name := range members {
		if p, err := cp.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil || p.Spec.NodeName != "" {
			t.Fatalf("%s: bound to %q (err %v) while its group waits for room", name, p.Spec.NodeName, err)
		}
	}

	zero := int64(0)
	if err := cp.Client.CoreV1().Pods(ns).Delete(context.Background(), "holder", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	cliques := map[string]bool{}
	for _, name := range members {
		a := assignmentOf(t, waitBound(t, ns, name, 60*time.Second))
		if len(a.GPUs) != 3 {
			t.Fatalf("%s got GPUs %v, want 3", name, a.GPUs)
		}
		clique := topo.Spec.GPUs[a.GPUs[0]].NVLinkDomain
		for _, g := range a.GPUs {
			if topo.Spec.GPUs[g].NVLinkDomain != clique {
				t.Errorf("%s got GPUs %v across cliques", name, a.GPUs)
			}
		}
		cliques[clique] = true
	}
	if len(cliques) != 2 {
		t.Errorf("members share clique %v", cliques)
	}
}

// TestGangFitsWhereOnlyTopologyFits: four PCIe GPUs that the labels would
// split over two NUMA nodes (two each), while the agent reports all four on
// one NUMA node. A group of a 3-GPU member that requires one NUMA node and
// a 1-GPU member never fits the labels, but fits the node: it must bind,
// the big member's GPUs on that one NUMA node.
func TestGangFitsWhereOnlyTopologyFits(t *testing.T) {
	installCRDs(t)
	zeroNUMA := int32(0)
	topo := &tesserav1alpha1.NodeGPUTopology{ObjectMeta: metav1.ObjectMeta{Name: "gang-one-numa"}}
	for i := int32(0); i < 4; i++ {
		topo.Spec.GPUs = append(topo.Spec.GPUs, tesserav1alpha1.GPUDevice{
			Index: i, UUID: fmt.Sprintf("GPU-numa-%d", i), Product: "NVIDIA-L40S", NUMANode: &zeroNUMA,
		})
	}
	publishTopology(t, topo)
	createNodes(t, nodeSpec{name: "gang-one-numa", cpu: "64", memory: "512Gi", gpus: 4,
		labels: map[string]string{"nvidia.com/gpu.product": "NVIDIA-L40S"}})
	startScheduler(t, cp.Config, schedulerConfig(t))
	ns := newNamespace(t)

	createPodGroup(t, ns, "mixed", 2, 120, nil)
	createPod(t, ns, podSpec{name: "big", schedulerName: "tessera-scheduler", gpus: 3,
		annotations: map[string]string{"tessera.dev/gpu-topology": "required"},
		labels:      map[string]string{schedv1alpha1.PodGroupLabel: "mixed"}})
	createPod(t, ns, podSpec{name: "small", schedulerName: "tessera-scheduler", gpus: 1,
		labels: map[string]string{schedv1alpha1.PodGroupLabel: "mixed"}})
	big := assignmentOf(t, waitBound(t, ns, "big", 60*time.Second))
	small := assignmentOf(t, waitBound(t, ns, "small", 60*time.Second))
	if len(big.GPUs) != 3 || len(small.GPUs) != 1 {
		t.Fatalf("big got %v, small %v", big.GPUs, small.GPUs)
	}
	for _, g := range big.GPUs {
		if g == small.GPUs[0] {
			t.Errorf("GPU %d given to both members (big %v, small %v)", g, big.GPUs, small.GPUs)
		}
	}
}
