package replay

import (
	"strconv"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
)

// SchedulerName is the profile the replayed pods ask for.
const SchedulerName = "tessera-scheduler"

// Node turns a trace node into the Node a kubelet, NVIDIA's device plugin
// and GPU Feature Discovery would report: CPU, memory, nvidia.com/gpu, and
// the GPU model as nvidia.com/gpu.product (the trace's model codes, e.g.
// V100M16, are not in Tessera's catalog and are placed as plain GPUs).
func (n NodeRow) Node() *v1.Node {
	capacity := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewMilliQuantity(n.CPUMilli, resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(n.MemoryMiB<<20, resource.BinarySI),
		// The trace packs many small pods per node; the pod count is not
		// what is being measured.
		v1.ResourcePods: *resource.NewQuantity(1000, resource.DecimalSI),
	}
	labels := map[string]string{"kubernetes.io/hostname": n.Name}
	if n.GPUs > 0 {
		capacity[kube.ResourceGPU] = *resource.NewQuantity(int64(n.GPUs), resource.DecimalSI)
		labels[gpu.LabelProduct] = n.Model
		labels["nvidia.com/gpu.count"] = strconv.Itoa(n.GPUs)
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: types.UID("node-" + n.Name), Labels: labels},
		Status: v1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Conditions:  []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
		},
	}
}

// Pod turns a trace pod into the pod a user would write for Tessera: CPU and
// memory requests, nvidia.com/gpu for whole GPUs, the tessera.dev/gpu-milli
// annotation for a share of one GPU, and required node affinity on
// nvidia.com/gpu.product for a GPU-model constraint. name must be unique.
func (p PodRow) Pod(name string) *v1.Pod {
	requests := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewMilliQuantity(p.CPUMilli, resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(p.MemoryMiB<<20, resource.BinarySI),
	}
	limits := v1.ResourceList{}
	annotations := map[string]string{}
	switch {
	case p.NumGPU > 0 && p.GPUMilli >= 1000:
		q := *resource.NewQuantity(int64(p.NumGPU), resource.DecimalSI)
		requests[kube.ResourceGPU], limits[kube.ResourceGPU] = q, q
	case p.NumGPU == 1 && p.GPUMilli > 0:
		annotations[kube.AnnotationShare] = strconv.Itoa(p.GPUMilli)
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name), Annotations: annotations},
		Spec: v1.PodSpec{
			SchedulerName: SchedulerName,
			Containers: []v1.Container{{
				Name:      "main",
				Image:     "trace",
				Resources: v1.ResourceRequirements{Requests: requests, Limits: limits},
			}},
		},
	}
	if len(p.GPUSpec) > 0 && p.NumGPU > 0 {
		pod.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: gpu.LabelProduct, Operator: v1.NodeSelectorOpIn, Values: p.GPUSpec}},
			}}},
		}}
	}
	return pod
}
