package kube

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/tessera-sched/tessera/pkg/quota"
)

// Amount converts a quantity to the unit pkg/quota and pkg/gang use for
// the resource: milli-CPU, milli-GPU-equivalents, otherwise the plain value
// (bytes, device counts, share milli).
func Amount(name v1.ResourceName, q resource.Quantity) int64 {
	switch string(name) {
	case string(v1.ResourceCPU), quota.ResourceGPUEquivalent:
		return q.MilliValue()
	}
	return q.Value()
}

// Amounts converts a resource list (a quota's min or max, a PodGroup's
// minResources) by Amount; nil for an empty list.
func Amounts(l v1.ResourceList) quota.Resources {
	if len(l) == 0 {
		return nil
	}
	out := make(quota.Resources, len(l))
	for name, q := range l {
		out[string(name)] = Amount(name, q)
	}
	return out
}

// QuotaCharge is what a pod counts against its namespace's quota: its
// requests (CPU, memory, whole GPUs, each MIG profile), its GPU share, and
// the GPU-equivalents of all of them under tessera.dev/gpu. A malformed
// share annotation is left out (ShareMilli): GPUPlacement never places
// such a pod.
func QuotaCharge(pod *v1.Pod) quota.Resources {
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	out := make(quota.Resources, len(reqs)+2)
	for name, q := range reqs {
		if name == ResourceShareSlot {
			continue // a token; the share annotation is the amount
		}
		if v := Amount(name, q); v != 0 {
			out[string(name)] = v
		}
	}
	if milli, err := ShareMilli(pod); err == nil && milli > 0 {
		out[quota.ResourceGPUShare] = int64(milli)
	}
	return quota.WithGPUEquivalents(out)
}

// QuotaUsage is the pod's quota record on node (its charge, priority,
// start time and pod group), as ElasticQuota's tracker keeps it and as
// Gang's whole-group preemption offers victims, so both apply one rule.
func QuotaUsage(pod *v1.Pod, node string) quota.PodUsage {
	u := quota.PodUsage{
		UID:       string(pod.UID),
		Namespace: pod.Namespace,
		Resources: QuotaCharge(pod),
		Gang:      pod.Labels[LabelPodGroup],
		Node:      node,
	}
	if pod.Spec.Priority != nil {
		u.Priority = *pod.Spec.Priority
	}
	if pod.Status.StartTime != nil {
		u.StartTime = pod.Status.StartTime.Time
	}
	return u
}

// NodeCapacity is what a node adds to the cluster capacity that
// unguaranteed borrowing draws from, in the units of QuotaCharge, with
// GPU-equivalents and the share capacity of its whole GPUs.
func NodeCapacity(node *v1.Node) quota.Resources {
	out := make(quota.Resources, len(node.Status.Allocatable)+2)
	for name, q := range node.Status.Allocatable {
		if name == ResourceShareSlot {
			continue // slots of the same whole GPUs
		}
		out[string(name)] = Amount(name, q)
	}
	// GPU equivalents first: share capacity is carved out of the same
	// whole GPUs and must not count again.
	out = quota.WithGPUEquivalents(out)
	if g := out[quota.ResourceNvidiaGPU]; g > 0 {
		out[quota.ResourceGPUShare] = g * 1000
	}
	return out
}
