package gpuplacement

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
)

// Reserve records the devices chosen for the pod on the node, so that no
// other pod in flight is given them.
func (pl *GPUPlacement) Reserve(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, err := getCycleState(cs)
	if err != nil {
		return nil
	}
	p := s.getPick(nodeName)
	if p == nil {
		// Filter did not run on this node in this cycle: decide now, from
		// the cycle's snapshot.
		ni, err := pl.handle.SnapshotSharedLister().NodeInfos().Get(nodeName)
		if err != nil {
			return fwk.AsStatus(err)
		}
		if st := pl.Filter(ctx, cs, pod, ni); !st.IsSuccess() {
			return st
		}
		p = s.getPick(nodeName)
	}
	pl.ledger.set(pod.UID, p.assignment)
	return nil
}

// Unreserve releases the pod's reserved devices.
func (pl *GPUPlacement) Unreserve(_ context.Context, cs fwk.CycleState, pod *v1.Pod, _ string) {
	pl.ledger.forget(pod.UID)
}

// Bind binds a pod that holds devices and writes the decision on it in the
// same API call: the Binding carries the annotation
// tessera.dev/gpu-assignment (for the node-side component that hands the
// devices to the container, and for rebuilding state after a restart), and
// the API server copies a Binding's annotations onto the pod as it sets the
// node. One write per pod instead of a patch and a binding, which halves
// the API server's load for GPU pods. Pods without devices are left to
// DefaultBinder (Skip), so the shipped profiles list GPUPlacement first at
// the bind extension point.
func (pl *GPUPlacement) Bind(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	a, ok := pl.ledger.get(pod.UID)
	if !ok {
		return fwk.NewStatus(fwk.Skip)
	}
	if s, err := getCycleState(cs); err == nil {
		if p := s.getPick(nodeName); p != nil && p.node.Topology != nil {
			a = a.WithUUIDs(p.node.Topology.Topo)
		}
	}
	value, err := gpu.MarshalAssignment(a)
	if err != nil {
		return fwk.AsStatus(err)
	}
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			Annotations: map[string]string{kube.AnnotationAssignment: value}},
		Target: v1.ObjectReference{Kind: "Node", Name: nodeName},
	}
	if c := pl.handle.APICacher(); c != nil {
		onFinish, err := c.BindPod(binding)
		if err != nil {
			return fwk.AsStatus(err)
		}
		if err := c.WaitOnFinish(ctx, onFinish); err != nil {
			return fwk.AsStatus(err)
		}
		return nil
	}
	if err := pl.handle.ClientSet().CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fwk.AsStatus(fmt.Errorf("binding with %s: %w", kube.AnnotationAssignment, err))
	}
	return nil
}
