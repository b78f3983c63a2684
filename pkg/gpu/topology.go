package gpu

import (
	"fmt"
	"strconv"
	"strings"
)

// MIGMode says whether, and how, a GPU is partitioned with MIG. It decides
// which requests the GPU can serve: a MIG-disabled GPU serves whole-GPU and
// share requests, a MIG-enabled one only MIG requests.
type MIGMode int

const (
	// MIGDisabled is a GPU used whole or shared.
	MIGDisabled MIGMode = iota
	// MIGStatic is a MIG GPU whose instances were laid out by an admin or
	// an operator (for example the GPU Operator's MIG manager): only its
	// existing instances can be handed out.
	MIGStatic
	// MIGDynamic is a MIG GPU on which the scheduler may choose a legal new
	// start position for an instance; a node agent creates it before the
	// pod starts. Instances that already exist are usable as well.
	MIGDynamic
)

// String returns the mode's name as used in text encodings and messages.
func (m MIGMode) String() string {
	switch m {
	case MIGDisabled:
		return "disabled"
	case MIGStatic:
		return "static"
	case MIGDynamic:
		return "dynamic"
	}
	return "MIGMode(" + strconv.Itoa(int(m)) + ")"
}

// MarshalText encodes the mode by name so that published topologies are
// readable by people and stable if the constants are ever renumbered.
func (m MIGMode) MarshalText() ([]byte, error) {
	if m < MIGDisabled || m > MIGDynamic {
		return nil, fmt.Errorf("invalid MIG mode %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText decodes a mode name written by MarshalText; the empty
// string means MIGDisabled.
func (m *MIGMode) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "", "disabled":
		*m = MIGDisabled
	case "static":
		*m = MIGStatic
	case "dynamic":
		*m = MIGDynamic
	default:
		return fmt.Errorf("invalid MIG mode %q (want disabled, static or dynamic)", string(b))
	}
	return nil
}

// MIGInstance is a MIG GPU instance that exists on a GPU, identified by its
// profile and the memory slice it starts at.
type MIGInstance struct {
	Profile string `json:"profile"`
	Start   int    `json:"start"`
}

// GPU is the static description of one GPU of a node: what it is and how it
// is wired. What is in use is kept apart, in NodeState.
type GPU struct {
	// Index is the device's index on the node (nvidia-smi's index); it is
	// how assignments name the device.
	Index int `json:"index"`
	// UUID is the device's UUID, when known.
	UUID string `json:"uuid,omitempty"`
	// Product is the product name as LookupProduct understands it.
	Product string `json:"product,omitempty"`
	// MemoryMiB is the device memory, 0 when unknown.
	MemoryMiB int64 `json:"memoryMiB,omitempty"`
	// NUMANode is the host NUMA node the GPU is attached to, -1 when unknown.
	NUMANode int `json:"numaNode"`
	// Domain names the NVLink/NVSwitch clique the GPU belongs to; GPUs in one
	// domain talk over NVLink. "" means none: the GPU talks over PCIe only.
	Domain string `json:"domain,omitempty"`
	// PCIeSwitch names the PCIe switch the GPU hangs off, "" when unknown.
	PCIeSwitch string `json:"pcieSwitch,omitempty"`
	// MIG is the GPU's MIG mode.
	MIG MIGMode `json:"mig,omitempty"`
	// Instances are the MIG instances that exist on the GPU. On a MIGStatic
	// GPU they are the only usable ones; on a MIGDynamic GPU they are usable
	// too and new ones may not overlap them.
	Instances []MIGInstance `json:"instances,omitempty"`
}

// Topology is the static description of one node's GPUs, as a node agent
// publishes it or DefaultTopology guesses it.
type Topology struct {
	GPUs []GPU `json:"gpus"`
}

// Clone returns a deep copy of t, so that a NodeState never shares memory
// with a caller's topology.
func (t Topology) Clone() Topology {
	out := Topology{GPUs: make([]GPU, len(t.GPUs))}
	for i, g := range t.GPUs {
		if g.Instances != nil {
			g.Instances = append([]MIGInstance(nil), g.Instances...)
		}
		out.GPUs[i] = g
	}
	return out
}

// Validate reports the first problem that would make t describe impossible
// hardware: a negative or duplicate index or a duplicate UUID, MIG on a
// product without it, instances on a MIG-disabled GPU, profiles a known
// product does not offer, illegal start positions, overlapping instances or
// more than MIGComputeSlices compute slices. The error names the GPU index
// and the offending value. NewNodeState tolerates invalid topologies, but a
// caller that can refuse one (a node agent, an admission check) should.
func (t Topology) Validate() error {
	seen := make(map[int]bool, len(t.GPUs))
	uuids := make(map[string]int, len(t.GPUs))
	for i, g := range t.GPUs {
		if g.Index < 0 {
			return fmt.Errorf("gpus[%d]: negative index %d", i, g.Index)
		}
		if seen[g.Index] {
			return fmt.Errorf("gpu %d: index listed twice", g.Index)
		}
		seen[g.Index] = true
		if g.UUID != "" {
			if other, dup := uuids[g.UUID]; dup {
				return fmt.Errorf("gpu %d: UUID %q is also gpu %d's", g.Index, g.UUID, other)
			}
			uuids[g.UUID] = g.Index
		}
		if g.NUMANode < -1 {
			return fmt.Errorf("gpu %d: invalid NUMA node %d (want -1 for unknown or >= 0)", g.Index, g.NUMANode)
		}
		if g.MemoryMiB < 0 {
			return fmt.Errorf("gpu %d: negative memory %d MiB", g.Index, g.MemoryMiB)
		}
		if err := validateMIG(g); err != nil {
			return err
		}
	}
	return nil
}

// validateMIG checks one GPU's MIG mode and instances.
func validateMIG(g GPU) error {
	switch g.MIG {
	case MIGDisabled:
		if len(g.Instances) > 0 {
			return fmt.Errorf("gpu %d: has %d MIG instances but MIG is disabled", g.Index, len(g.Instances))
		}
		return nil
	case MIGStatic, MIGDynamic:
	default:
		return fmt.Errorf("gpu %d: invalid MIG mode %d", g.Index, int(g.MIG))
	}
	product := lookupProduct(g.Product)
	if product != nil && !product.MIGCapable() {
		return fmt.Errorf("gpu %d: MIG is %s but product %s does not support MIG", g.Index, g.MIG, product.Name)
	}
	var used uint8
	compute := 0
	for _, inst := range g.Instances {
		p, ok := resolveProfile(product, inst.Profile)
		if !ok {
			if product != nil {
				return fmt.Errorf("gpu %d: MIG profile %q is not offered by %s", g.Index, inst.Profile, product.Name)
			}
			return fmt.Errorf("gpu %d: malformed MIG profile %q", g.Index, inst.Profile)
		}
		if !p.LegalStart(inst.Start) {
			return fmt.Errorf("gpu %d: MIG %s cannot start at memory slice %d (legal starts %v)", g.Index, inst.Profile, inst.Start, p.Starts)
		}
		mask := p.slots(inst.Start)
		if used&mask != 0 {
			return fmt.Errorf("gpu %d: MIG %s at %d overlaps another instance", g.Index, inst.Profile, inst.Start)
		}
		used |= mask
		compute += p.ComputeSlices
	}
	if compute > MIGComputeSlices {
		return fmt.Errorf("gpu %d: MIG instances use %d compute slices, more than %d", g.Index, compute, MIGComputeSlices)
	}
	return nil
}

// resolveProfile finds a profile's geometry: from the catalog for a known
// product, inferred from the name for an unknown one.
func resolveProfile(product *Product, name string) (MIGProfile, bool) {
	if product != nil {
		return product.Profile(name)
	}
	return inferProfile(name)
}

// DefaultTopology guesses the topology of a node with count GPUs of the given
// product, for nodes where no agent published the real one. Every GPU gets
// index 0..count-1, MIG disabled and no UUID; the product name is made
// canonical when the catalog knows it. The wiring follows the usual server
// designs:
//
//   - SXM products on 8-GPU HGX boards (A100-SXM4, H100-80GB-HBM3, H200,
//     B200): one NVSwitch domain, "nvswitch-0", over two NUMA nodes, GPUs
//     0-3 on NUMA node 0 and 4-7 on NUMA node 1. More than four SXM GPUs are
//     treated as such a board, split evenly over the two NUMA nodes; beyond
//     eight, each further group of eight is its own domain "nvswitch-<n>".
//   - SXM products with at most four GPUs (4-GPU HGX boards): one NVLink
//     domain, "nvlink-0", on NUMA node 0.
//   - NVL products (H100-NVL, H200-NVL): NVLink bridge pairs, GPUs 0-1 in
//     domain "nvl-0", 2-3 in "nvl-1" and so on; NUMA as for PCIe.
//   - PCIe products and unknown products: no NVLink domain (""). With four or
//     more GPUs they are split evenly over two NUMA nodes, the first half
//     (rounded up) on NUMA node 0; with fewer, all are on NUMA node 0.
func DefaultTopology(product string, count int) Topology {
	if count <= 0 {
		return Topology{}
	}
	name, mem := product, int64(0)
	p := lookupProduct(product)
	if p != nil {
		name, mem = p.Name, p.MemoryMiB
	}
	t := Topology{GPUs: make([]GPU, count)}
	for i := range t.GPUs {
		g := GPU{Index: i, Product: name, MemoryMiB: mem}
		if count >= 4 {
			g.NUMANode = i * 2 / count
		}
		switch {
		case p != nil && p.SXM && count <= 4:
			g.Domain = "nvlink-0"
			g.NUMANode = 0
		case p != nil && p.SXM:
			g.Domain = "nvswitch-" + strconv.Itoa(i/8)
		case p != nil && p.NVLBridge:
			g.Domain = "nvl-" + strconv.Itoa(i/2)
		}
		t.GPUs[i] = g
	}
	return t
}
