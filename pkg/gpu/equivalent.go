package gpu

import (
	"fmt"
	"strconv"
	"strings"
)

// AnnotationShare is the pod annotation that asks for a share of one GPU in
// milli-GPUs (1-999). No extended resource measures shares, so the
// scheduler accounts them per GPU, and quotas count them under the same
// name.
const AnnotationShare = "tessera.dev/gpu-milli"

// ResourceShareSlot is the extended resource through which the kubelet
// admits a share pod: tessera-agent's device plugin serves it as slots of
// each GPU, and the admission policy shipped with it adds one slot to the
// first container of every pod annotated with AnnotationShare. Without a
// resource the kubelet would call no device plugin for the pod, and the
// container would get no GPU (or, through an image's own
// NVIDIA_VISIBLE_DEVICES, any GPU). A slot is a token, not an amount: the
// share's size is the annotation's, and neither quotas nor node capacity
// count slots.
const ResourceShareSlot = "tessera.dev/gpu-share-slot"

// MIGSlices returns the number of compute slices an instance of a MIG
// profile takes: "3g.40gb" takes 3 of MIGComputeSlices. It accepts the
// device plugin's resource name ("nvidia.com/mig-3g.40gb") and extensions
// such as "+me" (media engines), which do not change compute. The error
// names the profile, for callers that report it.
func MIGSlices(profile string) (int64, error) {
	p := strings.TrimPrefix(profile, MIGResourcePrefix)
	if i := strings.IndexByte(p, '+'); i >= 0 {
		p = p[:i]
	}
	g, mem, ok := strings.Cut(p, "g.")
	if !ok || !strings.HasSuffix(mem, "gb") {
		return 0, fmt.Errorf("MIG profile %q is not of the form <g>g.<mem>gb", profile)
	}
	slices, err := strconv.ParseInt(g, 10, 64)
	if err != nil || slices < 1 || slices > MIGComputeSlices {
		return 0, fmt.Errorf("MIG profile %q: compute slices %q must be 1 to %d", profile, g, MIGComputeSlices)
	}
	if size, err := strconv.ParseInt(strings.TrimSuffix(mem, "gb"), 10, 64); err != nil || size < 1 {
		return 0, fmt.Errorf("MIG profile %q: memory %q is not a positive number of GB", profile, mem)
	}
	return slices, nil
}

// EquivalentMilli is the one definition of a GPU-equivalent, in milli-GPUs:
// what wholeGPUs full GPUs, the MIG instances in mig (profile or resource
// name → count) and shareMilli of shares amount to. Quotas charge it, gangs
// size their members by it and reports show it, so a team given "4 GPUs" is
// charged the same whether it runs 4 whole GPUs, 28 1g instances or 8 half
// shares.
//
// Whole GPUs and MIG instances are summed exactly in sevenths of a GPU (a
// whole GPU is MIGComputeSlices, an instance of a <g>g profile is g) and
// converted to milli once, rounding down: within one call 7 × 1g, 3g + 4g
// and one whole GPU are all exactly 1000, and across calls — quotas charge
// pod by pod — no slicing of N GPUs ever costs more than N × 1000 (rounding
// up, seven 1g pods would cost 1001 and a quota of exactly one GPU could not
// be filled).
//
// A profile that MIGSlices rejects counts as a whole GPU per instance:
// over-charging keeps a quota safe, and GPUPlacement refuses such pods with
// a reason naming the profile, so nothing is ever placed on that count.
func EquivalentMilli(wholeGPUs int64, mig map[string]int64, shareMilli int64) int64 {
	sevenths := wholeGPUs * MIGComputeSlices
	for profile, count := range mig {
		sevenths += instanceSevenths(profile) * count
	}
	return sevenths*1000/MIGComputeSlices + shareMilli
}

// instanceSevenths is one instance of profile in sevenths of a GPU, by
// EquivalentMilli's rule for profiles MIGSlices rejects.
func instanceSevenths(profile string) int64 {
	slices, err := MIGSlices(profile)
	if err != nil {
		return MIGComputeSlices
	}
	return slices
}
