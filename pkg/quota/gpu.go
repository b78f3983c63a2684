package quota

import (
	"strings"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// Resource names the quota logic knows about. Any other name is treated as an
// opaque countable resource.
const (
	// ResourceCPU is CPU in millicores.
	ResourceCPU = "cpu"
	// ResourceMemory is memory in bytes.
	ResourceMemory = "memory"
	// ResourceNvidiaGPU counts whole GPUs as exposed by the NVIDIA device
	// plugin.
	ResourceNvidiaGPU = gpu.ResourceGPU
	// ResourceGPUShare is a fractional GPU share in milli (500 = half a GPU),
	// as handed out by Tessera's GPU sharing; it has the name of the pod
	// annotation that asks for it.
	ResourceGPUShare = gpu.AnnotationShare
	// ResourceGPUEquivalent is derived, never requested: the GPU equivalents
	// of a pod's whole GPUs, MIG instances and shares, in milli. Quotas that
	// name it give a team a number of GPUs however the team slices them.
	ResourceGPUEquivalent = "tessera.dev/gpu"
)

// WithGPUEquivalents returns a copy of r with ResourceGPUEquivalent set from
// the whole GPUs, MIG instances (nvidia.com/mig-<profile>) and shares r
// requests, by gpu.EquivalentMilli, or removed when they add up to zero.
// The adapter applies it to every pod request so that quotas on
// tessera.dev/gpu see a single number, the one gangs and reports use too.
func WithGPUEquivalents(r Resources) Resources {
	var mig map[string]int64
	for name, v := range r {
		if strings.HasPrefix(name, gpu.MIGResourcePrefix) {
			if mig == nil {
				mig = make(map[string]int64)
			}
			mig[name] = v
		}
	}
	eq := gpu.EquivalentMilli(r[ResourceNvidiaGPU], mig, r[ResourceGPUShare])
	out := r.Clone()
	delete(out, ResourceGPUEquivalent)
	if eq != 0 {
		if out == nil {
			out = make(Resources, 1)
		}
		out[ResourceGPUEquivalent] = eq
	}
	return out
}
