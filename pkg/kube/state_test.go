package kube

import (
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

func TestCheckNode(t *testing.T) {
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{
			"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8",
		}},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{ResourceGPU: resource.MustParse("8")}},
	}
	pod := func(name string, gpus int64, a gpu.Assignment) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Annotations: map[string]string{}}}
		p.Spec.Containers = []v1.Container{{Resources: v1.ResourceRequirements{Limits: v1.ResourceList{ResourceGPU: *resource.NewQuantity(gpus, resource.DecimalSI)}}}}
		s, err := gpu.MarshalAssignment(a)
		if err != nil {
			t.Fatal(err)
		}
		p.Annotations[gpu.AnnotationAssignment] = s
		return p
	}
	ok := []*v1.Pod{pod("a", 2, gpu.Assignment{GPUs: []int{0, 1}}), pod("b", 2, gpu.Assignment{GPUs: []int{2, 3}})}
	if v := CheckNode(node, ok); len(v) != 0 {
		t.Errorf("consistent node reported %v", v)
	}
	clash := append(ok, pod("c", 1, gpu.Assignment{GPUs: []int{1}}))
	if v := CheckNode(node, clash); len(v) != 1 || !strings.Contains(v[0], "ns/c over-allocates") {
		t.Errorf("GPU 1 given twice: got %v", v)
	}
	many := append(ok, pod("d", 5, gpu.Assignment{GPUs: []int{4, 5, 6, 7}}))
	if v := CheckNode(node, many); len(v) != 1 || !strings.Contains(v[0], "request 9") {
		t.Errorf("9 GPUs requested on 8: got %v", v)
	}
}

// TestBuildNodeGPUsFollowsTheNode: a pod's realized devices (what the node
// agent saw the kubelet give it) are what it holds, before its assignment
// and instead of the conservative guess for a pod of another scheduler.
func TestBuildNodeGPUsFollowsTheNode(t *testing.T) {
	topo := &NodeTopology{}
	for i := 0; i < 4; i++ {
		topo.Topo.GPUs = append(topo.Topo.GPUs, gpu.GPU{Index: i, Product: "NVIDIA-H100-80GB-HBM3", NUMANode: -1})
	}
	pod := func(name string, gpus int64, annotations map[string]gpu.Assignment) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name), Annotations: map[string]string{}}}
		p.Spec.Containers = []v1.Container{{Resources: v1.ResourceRequirements{Limits: v1.ResourceList{ResourceGPU: *resource.NewQuantity(gpus, resource.DecimalSI)}}}}
		for k, a := range annotations {
			s, err := gpu.MarshalAssignment(a)
			if err != nil {
				t.Fatal(err)
			}
			p.Annotations[k] = s
		}
		return p
	}
	tests := []struct {
		name     string
		pods     []*v1.Pod
		wantUsed []int
	}{
		{name: "assignment", pods: []*v1.Pod{pod("a", 1, map[string]gpu.Assignment{gpu.AnnotationAssignment: {GPUs: []int{2}}})}, wantUsed: []int{2}},
		{name: "realized beats the assignment", pods: []*v1.Pod{pod("a", 1, map[string]gpu.Assignment{gpu.AnnotationAssignment: {GPUs: []int{2}}, gpu.AnnotationRealized: {GPUs: []int{3}}})}, wantUsed: []int{3}},
		{name: "a foreign pod's realized devices, not a guess", pods: []*v1.Pod{pod("f", 1, map[string]gpu.Assignment{gpu.AnnotationRealized: {GPUs: []int{3}}})}, wantUsed: []int{3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := BuildNodeGPUs(klog.Background(), topo, tc.pods, nil)
			var used []int
			for _, g := range ns.GPUs.GPUs() {
				if g.Use != gpu.UseFree {
					used = append(used, g.GPU.Index)
				}
			}
			if !slices.Equal(used, tc.wantUsed) {
				t.Errorf("used GPUs %v, want %v", used, tc.wantUsed)
			}
		})
	}
}
