package gpu

import (
	"fmt"
	"slices"
)

// ResourceGPU is the extended resource through which pods ask the NVIDIA
// device plugin for whole GPUs.
const ResourceGPU = "nvidia.com/gpu"

// Locality says how strictly a multi-GPU request wants its GPUs close to
// each other.
type Locality int

const (
	// LocalityPreferred (the default) asks for the best locality the node
	// can give but accepts GPUs that are not connected by NVLink and sit on
	// different NUMA nodes.
	LocalityPreferred Locality = iota
	// LocalityRequired accepts a node only if all whole GPUs fit in one
	// NVLink domain or one NUMA node; for jobs whose collective operations
	// would crawl over the inter-socket link.
	LocalityRequired
)

// String returns the locality's name for messages.
func (l Locality) String() string {
	switch l {
	case LocalityPreferred:
		return "preferred"
	case LocalityRequired:
		return "required"
	}
	return fmt.Sprintf("Locality(%d)", int(l))
}

// MIGRequest asks for Count instances of one MIG profile.
type MIGRequest struct {
	Profile string
	Count   int
}

// Request is what one pod asks for on one node. The parts may be combined;
// each part lands on GPUs of its own kind: whole GPUs and shares on
// MIG-disabled GPUs, MIG instances on MIG GPUs, and never two parts on one
// GPU.
type Request struct {
	// GPUs is the number of whole GPUs.
	GPUs int
	// MIG lists the MIG instances wanted, by profile.
	MIG []MIGRequest
	// ShareMilli is a share of one GPU in milli-GPUs (1..999); 0 for none.
	// A share never spans GPUs.
	ShareMilli int
	// Locality applies to the whole GPUs.
	Locality Locality
	// Near lists the GPUs (by index) that members of the pod's group
	// already hold on the node: whole GPUs are then taken, where enough are
	// free, from the same NVLink domain and NUMA node as those (else the
	// same domain, else the same NUMA node), so that a group's members on
	// one node talk over the fastest links.
	Near []int
	// Rest is how many more whole GPUs the pod's group still asks for
	// besides this pod's, when none of its GPUs is on the node yet: this
	// pod's GPUs are then taken from GPUs that could hold the rest too, so
	// that the members after it find room beside it.
	Rest int
}

// IsZero reports whether r asks for no GPU capacity at all, so that callers
// can skip GPU accounting for the pod.
func (r Request) IsZero() bool {
	if r.GPUs != 0 || r.ShareMilli != 0 {
		return false
	}
	for _, m := range r.MIG {
		if m.Count != 0 {
			return false
		}
	}
	return true
}

// GPUEquivalentMilli is the request's size in GPU-equivalents (milli-GPUs),
// by EquivalentMilli: the unit quotas charge and gangs size members by.
func (r Request) GPUEquivalentMilli() int64 {
	sevenths := int64(r.GPUs) * MIGComputeSlices
	for _, m := range r.MIG {
		sevenths += instanceSevenths(m.Profile) * int64(m.Count)
	}
	return sevenths*1000/MIGComputeSlices + int64(r.ShareMilli)
}

// Validate reports a request that no node could ever satisfy because it is
// malformed: negative counts, a share outside 1..999, a malformed profile or
// an unknown locality.
func (r Request) Validate() error {
	if r.GPUs < 0 {
		return InvalidRequest{Field: "gpus", Value: fmt.Sprint(r.GPUs)}
	}
	if r.ShareMilli < 0 || r.ShareMilli > 999 {
		return InvalidRequest{Field: "shareMilli", Value: fmt.Sprint(r.ShareMilli)}
	}
	if r.Locality != LocalityPreferred && r.Locality != LocalityRequired {
		return InvalidRequest{Field: "locality", Value: fmt.Sprint(int(r.Locality))}
	}
	for _, m := range r.MIG {
		if m.Count < 0 {
			return InvalidRequest{Field: "mig[" + m.Profile + "].count", Value: fmt.Sprint(m.Count)}
		}
		if _, _, ok := parseProfileName(m.Profile); !ok && m.Count > 0 {
			return InvalidRequest{Field: "mig.profile", Value: m.Profile}
		}
	}
	return nil
}

// migUnits expands r.MIG into one entry per instance, largest first (by
// compute slices, then name), so that big instances are placed while the
// GPUs still have room for them and the order does not depend on how the
// caller listed the profiles.
func (r Request) migUnits() []string {
	n := 0
	for _, m := range r.MIG {
		if m.Count > 0 {
			n += m.Count
		}
	}
	if n == 0 {
		return nil
	}
	units := make([]string, 0, n)
	for _, m := range r.MIG {
		for i := 0; i < m.Count; i++ {
			units = append(units, m.Profile)
		}
	}
	slices.SortStableFunc(units, func(a, b string) int {
		ga, _, _ := parseProfileName(a)
		gb, _, _ := parseProfileName(b)
		if ga != gb {
			return gb - ga
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})
	return units
}
