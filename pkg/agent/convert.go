package agent

import (
	"fmt"
	"sort"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/gpu"
)

// ToTopology converts a NodeGPUTopology spec into the scheduler's GPU model
// and validates it, exactly as the GPUPlacement plugin does when it reads a
// published object (topologyFromObject in pkg/plugins/gpuplacement, which
// cannot be imported here without compiling the scheduler framework into the
// agent). The agent refuses to publish a spec this rejects, since the
// scheduler would ignore it anyway; keep the two in step.
func ToTopology(spec tesserav1alpha1.NodeGPUTopologySpec) (gpu.Topology, error) {
	t := gpu.Topology{GPUs: make([]gpu.GPU, 0, len(spec.GPUs))}
	for _, d := range spec.GPUs {
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
			case tesserav1alpha1.MIGStatic:
				g.MIG = gpu.MIGStatic
			case tesserav1alpha1.MIGDynamic:
				g.MIG = gpu.MIGDynamic
			case tesserav1alpha1.MIGDisabled, "":
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
