// Package kube reads Kubernetes objects for Tessera: the resource, label
// and annotation names of NVIDIA's device plugin, GPU Feature Discovery and
// Tessera itself; what a pod asks for (its GPU demand and its quota charge);
// what a node offers (its capacity and the GPU topology its labels imply);
// and a node's GPU state derived from a topology and the pods on it.
//
// It sits between the pure cores (pkg/gpu, pkg/quota, pkg/gang), which know
// no Kubernetes types, and the plugins and tools above them. Every plugin,
// the playground, the replay and the benchmarks read pods and nodes through
// it, so that one pod is read one way everywhere and no plugin imports
// another for it.
package kube
