package kube

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// NodeTopology is what Tessera knows of a node's GPUs.
type NodeTopology struct {
	Topo gpu.Topology
	// SingleProfile is the MIG profile a MIG single-strategy node serves as
	// nvidia.com/gpu; "" otherwise.
	SingleProfile string
	// Source says where the topology came from, for Events and debugging.
	Source string
}

// TopologyFromLabels derives a node's GPUs from GPU Feature Discovery labels
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
func TopologyFromLabels(node *v1.Node) (NodeTopology, bool) {
	alloc := node.Status.Allocatable
	product := node.Labels[LabelProduct]
	n := quantity(alloc, ResourceGPU)
	if n > MaxGPUsPerNode {
		return NodeTopology{}, false
	}
	whole := int(max(n, 0))

	if node.Labels[LabelMIGStrategy] == "single" {
		if base, profile, ok := strings.Cut(product, "-MIG-"); ok && whole > 0 {
			t, err := packMIG(base, 0, 0, map[string]int{profile: whole})
			if err == nil {
				return NodeTopology{Topo: t, SingleProfile: profile, Source: "labels (MIG single strategy)"}, true
			}
		}
	}

	mig := map[string]int{}
	for name, q := range alloc {
		if profile, ok := gpu.ParseMIGResource(string(name)); ok && q.Value() > 0 {
			if q.Value() > MaxGPUsPerNode*gpu.MIGComputeSlices {
				return NodeTopology{}, false
			}
			mig[profile] = int(q.Value())
		}
	}
	if whole == 0 && len(mig) == 0 {
		return NodeTopology{}, false
	}
	if len(mig) > 0 {
		physical, _ := strconv.Atoi(node.Labels[LabelGPUCount])
		if physical < 0 || physical > MaxGPUsPerNode {
			physical = 0 // unknown
		}
		t, err := packMIG(product, whole, physical, mig)
		if err == nil {
			return NodeTopology{Topo: t, Source: "labels (MIG mixed strategy)"}, true
		}
	}
	return NodeTopology{Topo: gpu.DefaultTopology(product, whole), Source: "labels"}, true
}

// MaxGPUsPerNode bounds the GPUs a node's labels and allocatable counts may
// describe (the largest boards have 16). A node that advertises more (or
// more MIG devices than that many GPUs hold) is misconfigured: it gets no
// GPU topology, so nothing is placed on its GPUs, rather than a model that
// would cost the scheduler memory and time in proportion to a bogus count.
const MaxGPUsPerNode = 64

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
	for ; migGPUs <= total && whole+migGPUs <= MaxGPUsPerNode; migGPUs++ {
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

// Fingerprint identifies everything of a node that TopologyFromLabels
// reads, so that a derived topology is rebuilt exactly when one of them
// changes and not on every status heartbeat.
func Fingerprint(node *v1.Node) string {
	var b strings.Builder
	b.WriteString(string(node.UID))
	b.WriteByte('|')
	b.WriteString(node.Labels[LabelProduct])
	b.WriteByte('|')
	b.WriteString(node.Labels[LabelMIGStrategy])
	names := make([]string, 0, 4)
	for name := range node.Status.Allocatable {
		if strings.HasPrefix(string(name), "nvidia.com/") {
			names = append(names, string(name))
		}
	}
	sort.Strings(names)
	for _, n := range names {
		q := node.Status.Allocatable[v1.ResourceName(n)]
		b.WriteByte('|')
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(q.String())
	}
	return b.String()
}
