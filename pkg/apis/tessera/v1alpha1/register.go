package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of Tessera's own objects.
const GroupName = "tessera.dev"

// SchemeGroupVersion is the group version of this package's types.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// NodeGPUTopologyResource is the resource tessera-agent writes and
// GPUPlacement reads, through the dynamic client (no generated clientset).
var NodeGPUTopologyResource = SchemeGroupVersion.WithResource("nodegputopologies")

// Resource returns a GroupResource for an unqualified resource name.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

var (
	// SchemeBuilder registers this package's types with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds this package's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion, &NodeGPUTopology{}, &NodeGPUTopologyList{})
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}
