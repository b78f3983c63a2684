// Package gpu is Tessera's model of the GPUs on a Kubernetes node: what the
// hardware is, how it is wired, what is in use, where a new pod's devices
// should go and how much a placement fragments the node.
//
// The same model is shared by the scheduler plugin, the trace replay and the
// playground, so every function here is pure and deterministic: the same
// input always gives the same output, nothing depends on map iteration order
// and nothing is random. The package depends only on the Go standard library
// so that the replay and the playground do not pull in Kubernetes.
//
// The pieces, in the order a scheduling cycle uses them:
//
//   - The catalog (catalog.go, mig.go) knows the GPU products by the name that
//     NVIDIA GPU Feature Discovery puts in the nvidia.com/gpu.product label,
//     their memory, whether they are SXM board parts, and for MIG-capable
//     products the MIG profiles with their placement geometry. Unknown
//     products are not an error: they are plain GPUs without MIG.
//   - A Topology (topology.go) is the static description of one node's GPUs:
//     NUMA node, NVLink/NVSwitch domain, PCIe switch and MIG mode and
//     instances. DefaultTopology guesses one from the product and GPU count
//     when no node agent published the real one.
//   - A NodeState (node.go) is the free/used view of one node, built from a
//     Topology and the Assignments (assignment.go) of the pods bound to it.
//     Assignments travel on pods in the tessera.dev/gpu-assignment annotation
//     in a versioned JSON encoding.
//   - NodeState.Allocate (allocate.go) chooses devices for a Request
//     (request.go): whole GPUs with the best interconnect locality, MIG
//     instances, or a share of one GPU. It returns typed errors (errors.go)
//     whose Reason can be aggregated over nodes into a message for a person.
//   - A Distribution (distribution.go) learns the shapes of recent GPU demands
//     online, and NodeState.Fragmentation (fragmentation.go) measures, in the
//     spirit of FGD (Weng et al., "Beware of Fragmentation", USENIX ATC '23),
//     how much of a node's free GPU capacity a typical request could not use.
//     FragmentationDelta is the score a scheduler minimises, and
//     NodeState.BestShare (share.go) uses it to choose the GPU a share joins.
//
// Capacity is counted in milli-GPUs throughout: a whole GPU is 1000, a share
// is its milli value and a MIG instance is its compute slices*1000/7.
package gpu
