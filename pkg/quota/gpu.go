package quota

import (
	"fmt"
	"strconv"
	"strings"
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
	ResourceNvidiaGPU = "nvidia.com/gpu"
	// ResourceMIGPrefix prefixes the NVIDIA device plugin's MIG resources,
	// for example nvidia.com/mig-3g.40gb; each counts instances of a profile.
	ResourceMIGPrefix = "nvidia.com/mig-"
	// ResourceGPUShare is a fractional GPU share in milli (500 = half a GPU),
	// as handed out by Tessera's GPU sharing.
	ResourceGPUShare = "tessera.dev/gpu-milli"
	// ResourceGPUEquivalent is derived, never requested: the GPU equivalents
	// of a pod's whole GPUs, MIG instances and shares, in milli. Quotas that
	// name it give a team a number of GPUs however the team slices them.
	ResourceGPUEquivalent = "tessera.dev/gpu"
)

// MIGSlicesPerGPU is the number of compute slices of a full GPU on the MIG
// capable parts Tessera targets (A100, H100, H200, B200). A profile
// "<g>g.<mem>gb" takes g of them. Parts with another slice count (the A30
// has 4) would be under-charged by this rule and are not supported yet.
const MIGSlicesPerGPU = 7

// ParseMIGProfile returns the number of compute slices of a MIG profile such
// as "3g.40gb", "1g.10gb+me" or the full resource name
// "nvidia.com/mig-3g.40gb". It exists so that the adapter can reject or report
// unknown profiles instead of letting them be counted conservatively by
// GPUEquivalents.
func ParseMIGProfile(profile string) (int64, error) {
	p := strings.TrimPrefix(profile, ResourceMIGPrefix)
	if i := strings.IndexByte(p, '+'); i >= 0 {
		// Extensions such as "+me" (media engines) do not change compute.
		p = p[:i]
	}
	g, mem, ok := strings.Cut(p, "g.")
	if !ok || !strings.HasSuffix(mem, "gb") {
		return 0, fmt.Errorf("MIG profile %q is not of the form <g>g.<mem>gb", profile)
	}
	slices, err := strconv.ParseInt(g, 10, 64)
	if err != nil || slices < 1 || slices > MIGSlicesPerGPU {
		return 0, fmt.Errorf("MIG profile %q: compute slices %q must be 1 to %d", profile, g, MIGSlicesPerGPU)
	}
	if size, err := strconv.ParseInt(strings.TrimSuffix(mem, "gb"), 10, 64); err != nil || size < 1 {
		return 0, fmt.Errorf("MIG profile %q: memory %q is not a positive number of GB", profile, mem)
	}
	return slices, nil
}

// GPUEquivalents returns, in milli GPUs, what wholeGPUs full GPUs, the MIG
// instances in mig (profile → count, profiles as accepted by ParseMIGProfile)
// and shareMilli of fractional shares amount to. It is how a team given
// "4 GPUs" is charged the same whether it runs 4 whole GPUs, 28 1g instances
// or 8 half shares.
//
// Rounding rule: whole GPUs and MIG instances are first summed exactly in
// sevenths of a GPU (a whole GPU is 7, an instance of profile <g>g is g), and
// the total is converted to milli once, rounding down. Thus within one call
// 7 × 1g, 3g + 4g and 1 whole GPU are all exactly 1000. Rounding down, not up,
// matters across calls: the adapter charges each pod separately, and with
// rounding up seven pods of one 1g instance each would cost 7 × 143 = 1001 and
// a team holding exactly one GPU of quota could not fill it. Rounding down
// guarantees that no slicing of N GPUs ever costs more than N × 1000, at the
// price of under-charging by less than 1 milli per pod.
//
// A profile that ParseMIGProfile rejects counts as a whole GPU per instance:
// over-charging keeps the quota safe, and the adapter is expected to report
// such profiles.
func GPUEquivalents(wholeGPUs int64, mig map[string]int64, shareMilli int64) int64 {
	sevenths := wholeGPUs * MIGSlicesPerGPU
	for profile, count := range mig {
		slices, err := ParseMIGProfile(profile)
		if err != nil {
			slices = MIGSlicesPerGPU
		}
		sevenths += slices * count
	}
	return sevenths*1000/MIGSlicesPerGPU + shareMilli
}

// WithGPUEquivalents returns a copy of r with ResourceGPUEquivalent set from
// the whole GPUs, MIG instances and shares r requests, or removed when they
// add up to zero. The adapter applies it to every pod request so that quotas
// on tessera.dev/gpu see a single number.
func WithGPUEquivalents(r Resources) Resources {
	var mig map[string]int64
	for name, v := range r {
		if strings.HasPrefix(name, ResourceMIGPrefix) {
			if mig == nil {
				mig = make(map[string]int64)
			}
			mig[name] = v
		}
	}
	eq := GPUEquivalents(r[ResourceNvidiaGPU], mig, r[ResourceGPUShare])
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
