// Package agent is tessera-agent's library: it discovers a node's GPUs
// through NVML and publishes them as the node's NodeGPUTopology, the object
// from which the GPUPlacement scheduler plugin learns which GPUs share an
// NVLink domain, a PCIe switch or a NUMA node and where MIG instances sit.
//
// Discovery (Discover) only reads: the agent never creates or destroys MIG
// instances and never changes a GPU's mode. Publishing (Publisher) writes one
// cluster-scoped object named after the node and is careful never to replace
// a good topology with an empty or failed one, because the scheduler would
// then stop placing pods on the node's GPUs.
package agent
