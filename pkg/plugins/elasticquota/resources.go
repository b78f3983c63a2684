package elasticquota

import (
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/tessera-sched/tessera/pkg/quota"
)

// annotationShare is GPUPlacement's share annotation (milli-GPUs of one
// GPU), accounted under tessera.dev/gpu-milli.
const annotationShare = "tessera.dev/gpu-milli"

// amount converts a quantity to the unit pkg/quota uses for the resource:
// milli-CPU, milli-GPU-equivalents, otherwise the plain value (bytes,
// device counts, share milli).
func amount(name v1.ResourceName, q resource.Quantity) int64 {
	switch string(name) {
	case string(v1.ResourceCPU), quota.ResourceGPUEquivalent:
		return q.MilliValue()
	}
	return q.Value()
}

// FromList converts a quota's min or max to pkg/quota's units, for tools
// that show quota use the way the plugin accounts it.
func FromList(l v1.ResourceList) quota.Resources { return fromList(l) }

// PodCharge is what a pod counts against its namespace's quota, exactly as
// the plugin accounts it.
func PodCharge(pod *v1.Pod) quota.Resources { return podResources(pod) }

// fromList converts a quota's min or max.
func fromList(l v1.ResourceList) quota.Resources {
	if len(l) == 0 {
		return nil
	}
	out := make(quota.Resources, len(l))
	for name, q := range l {
		out[string(name)] = amount(name, q)
	}
	return out
}

// podResources is what a pod counts against its namespace's quota: its
// requests (CPU, memory, whole GPUs, each MIG profile), its GPU share, and
// the GPU equivalents of all of them under tessera.dev/gpu.
func podResources(pod *v1.Pod) quota.Resources {
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	out := make(quota.Resources, len(reqs)+2)
	for name, q := range reqs {
		if v := amount(name, q); v != 0 {
			out[string(name)] = v
		}
	}
	if v, ok := pod.Annotations[annotationShare]; ok {
		if milli, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && milli > 0 && milli < 1000 {
			out[quota.ResourceGPUShare] = int64(milli)
		}
	}
	return quota.WithGPUEquivalents(out)
}

// nodeCapacity is what a node adds to the cluster capacity that unguaranteed
// borrowing draws from, in the same units, with GPU equivalents and the
// share capacity of its whole GPUs.
func nodeCapacity(node *v1.Node) quota.Resources {
	out := make(quota.Resources, len(node.Status.Allocatable)+2)
	for name, q := range node.Status.Allocatable {
		out[string(name)] = amount(name, q)
	}
	// GPU equivalents first: share capacity is carved out of the same
	// whole GPUs and must not count again.
	out = quota.WithGPUEquivalents(out)
	if g := out[quota.ResourceNvidiaGPU]; g > 0 {
		out[quota.ResourceGPUShare] = g * 1000
	}
	return out
}

// Usage is pod's quota record (charge, priority, start time, gang) on node,
// as the tracker keeps it. Gang's whole-group preemption builds its victim
// candidates with it, so that both plugins apply the same rules.
func Usage(pod *v1.Pod, node string) quota.PodUsage { return usage(pod, node) }

// CountPreempted counts one victim evicted for a pod of preemptorNamespace
// in tessera_preempted_pods_total, as reclaim (another namespace's pod) or
// priority preemption; Gang's whole-group preemption reports through it.
func CountPreempted(preemptorNamespace, victimNamespace string) {
	kind := "priority"
	if victimNamespace != preemptorNamespace {
		kind = "reclaim"
	}
	preemptedPods.WithLabelValues(preemptorNamespace, victimNamespace, kind).Inc()
}
