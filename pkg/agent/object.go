package agent

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// NewObject builds the NodeGPUTopology that the agent publishes for a node:
// named after the node (the scheduler finds it by node name), with the
// discovered spec and a status summarising it. now becomes
// status.lastChecked.
func NewObject(nodeName string, spec tesserav1alpha1.NodeGPUTopologySpec, info Info, agentVersion string, now metav1.Time) *tesserav1alpha1.NodeGPUTopology {
	return &tesserav1alpha1.NodeGPUTopology{
		TypeMeta: metav1.TypeMeta{
			APIVersion: tesserav1alpha1.SchemeGroupVersion.String(),
			Kind:       "NodeGPUTopology",
		},
		ObjectMeta: metav1.ObjectMeta{
			Name: nodeName,
			Labels: map[string]string{
				"app.kubernetes.io/managed-by": "tessera-agent",
			},
		},
		Spec:   spec,
		Status: newStatus(spec, info, agentVersion, now),
	}
}

// newStatus summarises spec for `kubectl get` and records the writer.
func newStatus(spec tesserav1alpha1.NodeGPUTopologySpec, info Info, agentVersion string, now metav1.Time) tesserav1alpha1.NodeGPUTopologyStatus {
	st := tesserav1alpha1.NodeGPUTopologyStatus{
		GPUCount:      int32(len(spec.GPUs)),
		DriverVersion: info.DriverVersion,
		AgentVersion:  agentVersion,
		LastChecked:   now,
	}
	if len(spec.GPUs) > 0 {
		st.Product = spec.GPUs[0].Product
	}
	return st
}

// ToUnstructured converts obj for the dynamic client and for printing. It
// drops the "creationTimestamp: null" that an unsaved object's metadata
// would otherwise carry, so that printed objects apply cleanly and read
// well.
func ToUnstructured(obj *tesserav1alpha1.NodeGPUTopology) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	if md, ok := m["metadata"].(map[string]interface{}); ok {
		if ts, found := md["creationTimestamp"]; found && ts == nil {
			delete(md, "creationTimestamp")
		}
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// fromUnstructured decodes an object read through the dynamic client.
func fromUnstructured(u *unstructured.Unstructured) (*tesserav1alpha1.NodeGPUTopology, error) {
	obj := &tesserav1alpha1.NodeGPUTopology{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return nil, err
	}
	return obj, nil
}
