package gpuplacement

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// Labels of NVIDIA GPU Feature Discovery that describe a node's GPUs.
const (
	labelProduct     = gpu.LabelProduct
	labelMIGStrategy = "nvidia.com/mig.strategy"
	labelCount       = "nvidia.com/gpu.count"
)

// nodeTopology is what GPUPlacement knows of a node's GPUs.
type nodeTopology struct {
	topo gpu.Topology
	// singleProfile is the MIG profile a MIG single-strategy node serves as
	// nvidia.com/gpu; "" otherwise.
	singleProfile string
	// source says where the topology came from, for Events and debugging.
	source string
}

// topologyFromLabels derives a node's GPUs from GPU Feature Discovery labels
// and the device plugin's allocatable resources, for nodes where no agent
// publishes a NodeGPUTopology:
//
//   - nvidia.com/gpu allocatable GPUs (allocatable, not the gpu.count label,
//     because it leaves out unhealthy devices) of the labelled product, wired as
//     gpu.DefaultTopology documents (e.g. an 8-GPU SXM board is one NVSwitch
//     domain over two NUMA nodes);
//   - MIG mixed strategy: each nvidia.com/mig-<profile> instance is placed on
//     additional MIG GPUs, packed the way the GPU model packs new instances
//     (the real slot positions are unknown without the agent; counts are
//     exact);
//   - MIG single strategy (product label "<product>-MIG-<profile>"):
//     nvidia.com/gpu counts MIG devices of that one profile, laid out on as
//     few GPUs as they fit.
//
// ok is false for a node without GPUs.
func topologyFromLabels(node *v1.Node) (nodeTopology, bool) {
	alloc := node.Status.Allocatable
	product := node.Labels[labelProduct]
	whole := int(quantity(alloc, ResourceGPU))

	if node.Labels[labelMIGStrategy] == "single" {
		if base, profile, ok := strings.Cut(product, "-MIG-"); ok && whole > 0 {
			t, err := packMIG(base, 0, 0, map[string]int{profile: whole})
			if err == nil {
				return nodeTopology{topo: t, singleProfile: profile, source: "labels (MIG single strategy)"}, true
			}
		}
	}

	mig := map[string]int{}
	for name, q := range alloc {
		if profile, ok := gpu.ParseMIGResource(string(name)); ok && q.Value() > 0 {
			mig[profile] = int(q.Value())
		}
	}
	if whole == 0 && len(mig) == 0 {
		return nodeTopology{}, false
	}
	if len(mig) > 0 {
		physical, _ := strconv.Atoi(node.Labels[labelCount])
		t, err := packMIG(product, whole, physical, mig)
		if err == nil {
			return nodeTopology{topo: t, source: "labels (MIG mixed strategy)"}, true
		}
	}
	return nodeTopology{topo: gpu.DefaultTopology(product, whole), source: "labels"}, true
}

// packMIG builds a topology of whole MIG-disabled GPUs followed by MIG GPUs
// holding the instances, frozen as static instances. When the node's GPU
// count (physical, 0 if unknown) leaves n MIG GPUs and every profile's count
// divides by n, every MIG GPU gets the same layout — how operators configure
// MIG (one mig-parted profile per node). Otherwise the instances are placed
// where the GPU model would create them, on as few GPUs as that takes.
func packMIG(product string, whole, physical int, instances map[string]int) (gpu.Topology, error) {
	if n := physical - whole; n > 0 {
		if t, ok := uniformMIG(product, whole, n, instances); ok {
			return t, nil
		}
	}
	slices := 0
	profiles := make([]string, 0, len(instances))
	for p, n := range instances {
		g, err := strconv.Atoi(strings.SplitN(p, "g", 2)[0])
		if err != nil {
			return gpu.Topology{}, fmt.Errorf("MIG profile %q", p)
		}
		slices += g * n
		profiles = append(profiles, p)
	}
	sort.Strings(profiles)
	migGPUs := (slices + 6) / 7
	total := 0
	for _, n := range instances {
		total += n
	}
	for ; migGPUs <= total; migGPUs++ {
		t := gpu.DefaultTopology(product, whole+migGPUs)
		for i := whole; i < len(t.GPUs); i++ {
			t.GPUs[i].MIG = gpu.MIGDynamic
		}
		req := gpu.Request{}
		for _, p := range profiles {
			req.MIG = append(req.MIG, gpu.MIGRequest{Profile: p, Count: instances[p]})
		}
		a, _, err := gpu.NewNodeState(t).Allocate(req)
		if err != nil {
			continue
		}
		for i := whole; i < len(t.GPUs); i++ {
			t.GPUs[i].MIG = gpu.MIGStatic
		}
		for _, s := range a.MIG {
			t.GPUs[s.GPU].Instances = append(t.GPUs[s.GPU].Instances, gpu.MIGInstance{Profile: s.Profile, Start: s.Start})
		}
		return t, nil
	}
	return gpu.Topology{}, fmt.Errorf("cannot lay out MIG instances %v on %s GPUs", instances, product)
}

// uniformMIG lays the same set of instances (counts divided by n) on each
// of n MIG GPUs, if the counts divide evenly and the set fits one GPU.
func uniformMIG(product string, whole, n int, instances map[string]int) (gpu.Topology, bool) {
	one := gpu.Topology{GPUs: []gpu.GPU{{Index: 0, Product: product, NUMANode: -1, MIG: gpu.MIGDynamic}}}
	req := gpu.Request{}
	profiles := make([]string, 0, len(instances))
	for p := range instances {
		profiles = append(profiles, p)
	}
	sort.Strings(profiles)
	for _, p := range profiles {
		if instances[p]%n != 0 {
			return gpu.Topology{}, false
		}
		req.MIG = append(req.MIG, gpu.MIGRequest{Profile: p, Count: instances[p] / n})
	}
	a, _, err := gpu.NewNodeState(one).Allocate(req)
	if err != nil {
		return gpu.Topology{}, false
	}
	t := gpu.DefaultTopology(product, whole+n)
	for i := whole; i < len(t.GPUs); i++ {
		t.GPUs[i].MIG = gpu.MIGStatic
		for _, s := range a.MIG {
			t.GPUs[i].Instances = append(t.GPUs[i].Instances, gpu.MIGInstance{Profile: s.Profile, Start: s.Start})
		}
	}
	return t, true
}

func quantity(l v1.ResourceList, name v1.ResourceName) int64 {
	if q, ok := l[name]; ok {
		return q.Value()
	}
	return 0
}

// NodeGPUState derives a node's GPU state from its labels and capacity and
// the given pods' assignment annotations (pods without one are accounted
// conservatively), exactly as the plugin does for a node without a
// NodeGPUTopology. It is for tools that show or replay placements; nil
// means the node has no GPUs.
func NodeGPUState(node *v1.Node, pods []*v1.Pod) *gpu.NodeState {
	topo, ok := topologyFromLabels(node)
	if !ok {
		return nil
	}
	pl := &GPUPlacement{ledger: newLedger()}
	return pl.buildState(klog.Background(), &topo, pods).state
}

// RequestOn is the device-level request a pod makes on a node (on a MIG
// single-strategy node, whole GPUs are MIG devices of the node's profile).
// ok is false for a pod without GPU demand. For other plugins' what-if
// checks (e.g. whether a whole pod group fits) with GPUPlacement's rules.
func RequestOn(pod *v1.Pod, node *v1.Node) (r gpu.Request, ok bool, err error) {
	d, err := parseDemand(pod)
	if err != nil || d.isZero() {
		return gpu.Request{}, false, err
	}
	single := ""
	if topo, found := topologyFromLabels(node); found {
		single = topo.singleProfile
	}
	return d.requestOn(single), true, nil
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
	topo, ok := topologyFromLabels(node)
	if !ok {
		return out
	}
	state := gpu.NewNodeState(topo.topo)
	for _, p := range pods {
		raw, ok := p.Annotations[gpu.AnnotationAssignment]
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
