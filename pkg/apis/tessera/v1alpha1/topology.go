package v1alpha1

import (
	"fmt"
	"sort"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// Topology converts the spec into Tessera's GPU model and validates it. It
// is the one conversion both sides use: the GPUPlacement plugin when it
// reads a published object, and tessera-agent, which refuses to publish a
// spec the scheduler would reject.
func (s NodeGPUTopologySpec) Topology() (gpu.Topology, error) {
	t := gpu.Topology{GPUs: make([]gpu.GPU, 0, len(s.GPUs))}
	for _, d := range s.GPUs {
		g := gpu.GPU{
			Index:      int(d.Index),
			UUID:       d.UUID,
			Product:    d.Product,
			MemoryMiB:  d.MemoryMiB,
			NUMANode:   -1,
			Domain:     d.NVLinkDomain,
			PCIeSwitch: d.PCIeSwitch,
		}
		if d.NUMANode != nil {
			g.NUMANode = int(*d.NUMANode)
		}
		if d.MIG != nil {
			switch d.MIG.Mode {
			case MIGStatic:
				g.MIG = gpu.MIGStatic
			case MIGDynamic:
				g.MIG = gpu.MIGDynamic
			case MIGDisabled, "":
			default:
				return gpu.Topology{}, fmt.Errorf("gpus[%d].mig.mode: unsupported value %q", d.Index, d.MIG.Mode)
			}
			for _, in := range d.MIG.Instances {
				g.Instances = append(g.Instances, gpu.MIGInstance{Profile: in.Profile, Start: int(in.Start)})
			}
		}
		t.GPUs = append(t.GPUs, g)
	}
	sort.Slice(t.GPUs, func(i, j int) bool { return t.GPUs[i].Index < t.GPUs[j].Index })
	if err := t.Validate(); err != nil {
		return gpu.Topology{}, err
	}
	return t, nil
}
