// Package v1alpha1 holds Tessera's own API, group tessera.dev: the
// NodeGPUTopology that tessera-agent publishes for each GPU node and that the
// GPUPlacement plugin reads to place pods on exact devices.
//
// +kubebuilder:object:generate=true
// +groupName=tessera.dev
package v1alpha1
