package kube

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// NodeGPUs is a node's GPU state as derived from its topology and the pods
// on it.
type NodeGPUs struct {
	// Topology is nil for a node without GPUs.
	Topology *NodeTopology
	// GPUs is nil for a node without GPUs.
	GPUs *gpu.NodeState
	// Overbooked is set when the pods on the node hold more than its devices
	// (pods bound by another scheduler, or a topology that shrank): nothing
	// more is placed there until it clears.
	Overbooked bool
}

// Reservations looks up the devices reserved for a pod still in flight
// (reserved, its assignment not yet on the pod); nil means none are.
type Reservations func(types.UID) (gpu.Assignment, bool)

// BuildNodeGPUs derives a node's GPU state from its topology (nil for a
// node without GPUs) and the pods on it: a reserved pod's devices from
// reserved, a bound pod's from the devices the node agent saw it get
// (tessera.dev/gpu-realized) or else its assignment annotation, and for a
// pod placed by another scheduler that the agent has not reported yet a
// conservative assignment of what it requests, chosen after all known
// assignments so that it takes what is left.
func BuildNodeGPUs(logger klog.Logger, topo *NodeTopology, pods []*v1.Pod, reserved Reservations) *NodeGPUs {
	ns := &NodeGPUs{Topology: topo}
	if topo == nil {
		return ns
	}
	ns.GPUs = gpu.NewNodeState(topo.Topo)
	var unknown []gpu.Request
	for _, pod := range pods {
		if reserved != nil {
			if a, ok := reserved(pod.UID); ok {
				if err := ns.GPUs.Add(a); err != nil {
					logger.Error(err, "Reserved GPU assignment conflicts with the node's state", "pod", klog.KObj(pod))
					ns.Overbooked = true
				}
				continue
			}
		}
		// What the node agent saw the kubelet give the pod comes first: it
		// is what the pod holds.
		if raw, ok := pod.Annotations[gpu.AnnotationRealized]; ok {
			a, err := gpu.UnmarshalAssignment(raw)
			if err == nil {
				err = ns.GPUs.Add(a)
			}
			if err == nil {
				continue
			}
			logger.V(2).Info("Ignoring unusable realized GPU annotation", "pod", klog.KObj(pod), "err", err)
		}
		if raw, ok := pod.Annotations[AnnotationAssignment]; ok {
			a, err := gpu.UnmarshalAssignment(raw)
			if err == nil {
				err = ns.GPUs.Add(a)
			}
			if err == nil {
				continue
			}
			logger.V(2).Info("Ignoring unusable GPU assignment annotation; accounting the pod conservatively", "pod", klog.KObj(pod), "err", err)
		}
		d, err := ParseDemand(pod)
		if err != nil || d.IsZero() {
			continue
		}
		unknown = append(unknown, d.RequestOn(topo.SingleProfile))
	}
	for _, r := range unknown {
		if _, err := ns.GPUs.AddUnknown(r); err != nil {
			ns.Overbooked = true
		}
	}
	return ns
}

// LabelNodeGPUs derives a node's GPU state from its labels and capacity
// alone (TopologyFromLabels) and the given pods' assignment annotations,
// as GPUPlacement does for a node without a NodeGPUTopology.
func LabelNodeGPUs(logger klog.Logger, node *v1.Node, pods []*v1.Pod) *NodeGPUs {
	topo, ok := TopologyFromLabels(node)
	if !ok {
		return &NodeGPUs{}
	}
	return BuildNodeGPUs(logger, &topo, pods, nil)
}

// NodeGPUState is LabelNodeGPUs' device state, for tools that show or
// replay placements; nil means the node has no GPUs.
func NodeGPUState(node *v1.Node, pods []*v1.Pod) *gpu.NodeState {
	return LabelNodeGPUs(klog.Background(), node, pods).GPUs
}

// CheckNode audits the devices that pods hold on node, as recorded in their
// tessera.dev/gpu-assignment annotations, against the node's GPUs (derived
// from its labels and allocatable, as Filter does without a
// NodeGPUTopology): a GPU given whole to two pods, shares above 1000 milli,
// overlapping MIG slots, or more whole GPUs requested than the node has.
// It returns one line per violation, none when the node is consistent.
// Benchmarks and tests call it after a run to prove nothing was
// over-allocated.
func CheckNode(node *v1.Node, pods []*v1.Pod) []string {
	return CheckNodeTopology(node, nil, pods)
}

// CheckNodeTopology is CheckNode with the node's GPUs from topo (its
// NodeGPUTopology) where it is not nil, and each pod's devices taken from
// its tessera.dev/gpu-realized annotation where the node agent recorded
// one (what the pod really holds), else its assignment. Pods that have
// finished must be left out by the caller.
func CheckNodeTopology(node *v1.Node, topo *gpu.Topology, pods []*v1.Pod) []string {
	var out []string
	var whole int64
	for _, p := range pods {
		for _, c := range p.Spec.Containers {
			if q, ok := c.Resources.Limits[ResourceGPU]; ok {
				whole += q.Value()
			}
		}
	}
	if alloc, ok := node.Status.Allocatable[ResourceGPU]; ok && whole > alloc.Value() {
		out = append(out, fmt.Sprintf("node %s: pods request %d %s, allocatable is %d", node.Name, whole, ResourceGPU, alloc.Value()))
	}
	if topo == nil {
		labels, ok := TopologyFromLabels(node)
		if !ok {
			return out
		}
		topo = &labels.Topo
	}
	state := gpu.NewNodeState(*topo)
	for _, p := range pods {
		raw, ok := p.Annotations[gpu.AnnotationRealized]
		if !ok {
			raw, ok = p.Annotations[AnnotationAssignment]
		}
		if !ok {
			continue
		}
		a, err := gpu.UnmarshalAssignment(raw)
		if err != nil {
			out = append(out, fmt.Sprintf("node %s: pod %s/%s: %v", node.Name, p.Namespace, p.Name, err))
			continue
		}
		if err := state.Add(a); err != nil {
			out = append(out, fmt.Sprintf("node %s: pod %s/%s over-allocates: %v", node.Name, p.Namespace, p.Name, err))
		}
	}
	return out
}
