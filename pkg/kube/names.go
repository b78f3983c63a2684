package kube

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// Resource, label and annotation names. The strings live in pkg/gpu, which
// pkg/quota shares; these are their Kubernetes-typed forms.
const (
	// ResourceGPU is NVIDIA's device-plugin resource for whole GPUs (and, on
	// nodes labelled nvidia.com/mig.strategy=single, for MIG devices).
	ResourceGPU v1.ResourceName = gpu.ResourceGPU
	// AnnotationShare asks for a share of one GPU in milli-GPUs (1-999).
	AnnotationShare = gpu.AnnotationShare
	// ResourceShareSlot admits a share pod on a node whose GPUs
	// tessera-agent's device plugin serves (see gpu.ResourceShareSlot).
	ResourceShareSlot v1.ResourceName = gpu.ResourceShareSlot
	// AnnotationTopology is "required" or "preferred" (default): whether a
	// multi-GPU pod must get GPUs of one NVLink domain or NUMA node.
	AnnotationTopology = "tessera.dev/gpu-topology"
	// AnnotationAssignment is written at bind time: the exact devices a pod
	// got, in the versioned JSON form of gpu.MarshalAssignment.
	AnnotationAssignment = gpu.AnnotationAssignment

	// LabelProduct is GPU Feature Discovery's GPU product label.
	LabelProduct = gpu.LabelProduct
	// LabelMIGStrategy is GPU Feature Discovery's MIG strategy label,
	// "single" or "mixed".
	LabelMIGStrategy = "nvidia.com/mig.strategy"
	// LabelGPUCount is GPU Feature Discovery's count of physical GPUs.
	LabelGPUCount = "nvidia.com/gpu.count"
	// LabelPodGroup is scheduler-plugins' label by which a pod joins a
	// PodGroup of its namespace.
	LabelPodGroup = schedv1alpha1.PodGroupLabel
)

// PodOf is the pod of an informer event, the last known state of a deleted
// pod (cache.DeletedFinalStateUnknown) included.
func PodOf(obj any) (*v1.Pod, bool) {
	switch o := obj.(type) {
	case *v1.Pod:
		return o, true
	case cache.DeletedFinalStateUnknown:
		p, ok := o.Obj.(*v1.Pod)
		return p, ok
	}
	return nil, false
}
