package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeGPUTopology describes the GPUs of one node as the node itself sees them
// (through NVML): which GPUs share an NVLink/NVSwitch domain or a NUMA node,
// and where MIG instances sit on each GPU. Its name is the node's name.
//
// GPU Feature Discovery labels give a GPU product and counts only; the
// scheduler needs this object to keep a multi-GPU pod inside one NVLink
// domain and to place MIG slices on legal, non-overlapping slots. Where no
// NodeGPUTopology exists, GPUPlacement derives a documented default topology
// from the node's labels and capacity.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ngt
// +kubebuilder:printcolumn:name="GPUs",type=integer,JSONPath=`.status.gpuCount`
// +kubebuilder:printcolumn:name="Product",type=string,JSONPath=`.status.product`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeGPUTopology struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the discovered topology.
	Spec NodeGPUTopologySpec `json:"spec"`
	// Status summarises the spec for `kubectl get` and records who wrote it.
	// +optional
	Status NodeGPUTopologyStatus `json:"status,omitempty"`
}

// NodeGPUTopologySpec lists the node's GPUs.
type NodeGPUTopologySpec struct {
	// GPUs are the node's GPUs, one entry per physical device.
	// +listType=map
	// +listMapKey=index
	// +kubebuilder:validation:MaxItems=64
	GPUs []GPUDevice `json:"gpus"`
}

// MIGMode says whether a GPU is partitioned with Multi-Instance GPU and who
// decides the partitions.
// +kubebuilder:validation:Enum=Disabled;Static;Dynamic
type MIGMode string

const (
	// MIGDisabled: the GPU is used whole or shared by time-slicing.
	MIGDisabled MIGMode = "Disabled"
	// MIGStatic: MIG instances are fixed by an administrator or operator;
	// pods can only get existing free instances.
	MIGStatic MIGMode = "Static"
	// MIGDynamic: the scheduler may choose a legal start for a new instance,
	// which the node agent creates before the pod starts.
	MIGDynamic MIGMode = "Dynamic"
)

// GPUDevice is one physical GPU.
type GPUDevice struct {
	// Index is the GPU's NVML index on the node.
	// +kubebuilder:validation:Minimum=0
	Index int32 `json:"index"`
	// UUID is the GPU's NVML UUID (GPU-...).
	// +optional
	UUID string `json:"uuid,omitempty"`
	// Product is the product name in GPU Feature Discovery's form, e.g.
	// NVIDIA-H100-80GB-HBM3.
	Product string `json:"product"`
	// MemoryMiB is the GPU's total memory.
	// +optional
	MemoryMiB int64 `json:"memoryMiB,omitempty"`
	// PCIBusID is the GPU's PCI address, e.g. 0000:18:00.0.
	// +optional
	PCIBusID string `json:"pciBusID,omitempty"`
	// NUMANode is the NUMA node the GPU is attached to; absent when unknown.
	// +optional
	NUMANode *int32 `json:"numaNode,omitempty"`
	// NVLinkDomain names the set of GPUs this GPU reaches over NVLink or
	// NVSwitch (all GPUs with the same value); empty for PCIe-only GPUs.
	// +optional
	NVLinkDomain string `json:"nvlinkDomain,omitempty"`
	// PCIeSwitch names the PCIe switch the GPU sits behind; GPUs behind the
	// same switch communicate faster than across the CPU.
	// +optional
	PCIeSwitch string `json:"pcieSwitch,omitempty"`
	// MIG is the GPU's MIG configuration; absent means MIG is disabled.
	// +optional
	MIG *MIGConfig `json:"mig,omitempty"`
}

// MIGConfig is a GPU's Multi-Instance GPU mode and instances.
type MIGConfig struct {
	// Mode is Disabled, Static or Dynamic.
	Mode MIGMode `json:"mode"`
	// Instances are the GPU instances that exist now.
	// +optional
	// +kubebuilder:validation:MaxItems=7
	Instances []MIGInstance `json:"instances,omitempty"`
}

// MIGInstance is one MIG GPU instance.
type MIGInstance struct {
	// Profile is the instance's profile, e.g. 3g.40gb.
	Profile string `json:"profile"`
	// Start is the instance's placement start (memory slice, 0-7).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=7
	Start int32 `json:"start"`
	// UUID is the MIG device's UUID (MIG-...), when known.
	// +optional
	UUID string `json:"uuid,omitempty"`
}

// NodeGPUTopologyStatus records who published the object and when.
type NodeGPUTopologyStatus struct {
	// GPUCount is the number of GPUs in spec.
	// +optional
	GPUCount int32 `json:"gpuCount,omitempty"`
	// Product is the product of the node's GPUs (the first GPU's, if mixed).
	// +optional
	Product string `json:"product,omitempty"`
	// DriverVersion is the NVIDIA driver version the agent read.
	// +optional
	DriverVersion string `json:"driverVersion,omitempty"`
	// AgentVersion is the version of the tessera-agent that wrote this.
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`
	// LastChecked is when the agent last confirmed this topology.
	// +optional
	LastChecked metav1.Time `json:"lastChecked,omitempty"`
}

// NodeGPUTopologyList is a list of NodeGPUTopology.
//
// +kubebuilder:object:root=true
type NodeGPUTopologyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeGPUTopology `json:"items"`
}
