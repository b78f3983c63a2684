package kube

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
