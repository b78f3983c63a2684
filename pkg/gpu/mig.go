package gpu

import (
	"strconv"
	"strings"
)

// The MIG geometry of the A100/H100/H200/B200 class. A GPU is cut into
// MIGComputeSlices compute slices and MIGMemorySlices memory slices; an
// instance occupies a contiguous run of memory slices starting at one of the
// positions its profile allows, and the instances on one GPU may neither
// overlap in memory nor use more than MIGComputeSlices compute slices in all.
const (
	// MIGComputeSlices is the number of compute slices (GPCs) of a
	// MIG-capable GPU; a "3g" profile uses three of them.
	MIGComputeSlices = 7
	// MIGMemorySlices is the number of memory slices, which is also the size
	// of the placement space that start positions index into.
	MIGMemorySlices = 8
)

// MIGResourcePrefix is the prefix of the extended resources that the NVIDIA
// device plugin advertises for MIG devices under the "mixed" MIG strategy,
// for example nvidia.com/mig-3g.40gb.
const MIGResourcePrefix = "nvidia.com/mig-"

// MIGProfile is one MIG GPU-instance profile of a product, such as 3g.40gb on
// an A100-80GB. It carries the placement geometry the scheduler needs to know
// which instances can coexist on one GPU.
type MIGProfile struct {
	// Name is the profile as nvidia-smi and the device plugin spell it,
	// "<compute>g.<memory>gb".
	Name string
	// ComputeSlices is the number of compute slices (the "g" count).
	ComputeSlices int
	// MemorySlices is the number of consecutive memory slices an instance
	// occupies in the MIGMemorySlices-slot placement space.
	MemorySlices int
	// MemoryGB is the memory size taken from the profile name.
	MemoryGB int
	// Starts lists, ascending, the memory-slice positions at which an
	// instance of this profile may start.
	Starts []int
}

// Milli is the capacity of one instance of p in milli-GPUs, the unit the
// scheduler uses to compare MIG instances with whole GPUs and shares: its
// compute slices as a fraction of MIGComputeSlices.
func (p MIGProfile) Milli() int64 {
	return int64(p.ComputeSlices) * 1000 / MIGComputeSlices
}

// LegalStart reports whether an instance of p may start at memory slice
// start.
func (p MIGProfile) LegalStart(start int) bool {
	for _, s := range p.Starts {
		if s == start {
			return true
		}
	}
	return false
}

// slots is the bit mask of the memory slices an instance of p starting at
// start occupies; bit i is memory slice i.
func (p MIGProfile) slots(start int) uint8 {
	return uint8(((1 << p.MemorySlices) - 1) << start)
}

// sevenSliceProfiles builds the six MIG profiles of a 7-compute/8-memory-slice
// product from the memory sizes in their names. The geometry is the one
// NVIDIA documents for A100, H100, H200 and B200: 1g on one memory slice at
// 0..6, 1g with double memory and 2g on two slices at 0, 2, 4 (and 6 for the
// 1g), 3g on four slices at 0 or 4, 4g on four slices at 0, 7g on all eight.
func sevenSliceProfiles(g1, g1double, g2, g3, g4, g7 int) []MIGProfile {
	name := func(g, gb int) string { return strconv.Itoa(g) + "g." + strconv.Itoa(gb) + "gb" }
	return []MIGProfile{
		{Name: name(1, g1), ComputeSlices: 1, MemorySlices: 1, MemoryGB: g1, Starts: []int{0, 1, 2, 3, 4, 5, 6}},
		{Name: name(1, g1double), ComputeSlices: 1, MemorySlices: 2, MemoryGB: g1double, Starts: []int{0, 2, 4, 6}},
		{Name: name(2, g2), ComputeSlices: 2, MemorySlices: 2, MemoryGB: g2, Starts: []int{0, 2, 4}},
		{Name: name(3, g3), ComputeSlices: 3, MemorySlices: 4, MemoryGB: g3, Starts: []int{0, 4}},
		{Name: name(4, g4), ComputeSlices: 4, MemorySlices: 4, MemoryGB: g4, Starts: []int{0}},
		{Name: name(7, g7), ComputeSlices: 7, MemorySlices: 8, MemoryGB: g7, Starts: []int{0}},
	}
}

// parseProfileName splits a profile name "<g>g.<m>gb" (in any case) into its
// compute slice count and memory size. Media-extension profiles ("+me") are
// not accepted: the catalog does not model them.
func parseProfileName(name string) (compute, memoryGB int, ok bool) {
	name = strings.ToLower(name)
	g, rest, found := strings.Cut(name, "g.")
	if !found || !strings.HasSuffix(rest, "gb") {
		return 0, 0, false
	}
	compute, ok = parsePositive(g)
	if !ok {
		return 0, 0, false
	}
	memoryGB, ok = parsePositive(strings.TrimSuffix(rest, "gb"))
	if !ok {
		return 0, 0, false
	}
	return compute, memoryGB, true
}

// parsePositive parses a decimal number of ASCII digits that is at least 1.
// Unlike strconv.Atoi it rejects signs and leading "+".
func parsePositive(s string) (int, bool) {
	if s == "" || len(s) > 6 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 1
}

// inferProfile derives a profile's geometry from its name alone. It is used
// for MIG instances on products the catalog does not know. Because the name
// does not tell a double-memory 1g from a plain one, a 1g is assumed to take
// one memory slice: that footprint is never larger, and the legal starts
// never fewer, than the real ones, so existing instances are never rejected
// wrongly. Such GPUs are treated as MIG-static so that the guess is never
// used to create an instance.
func inferProfile(name string) (MIGProfile, bool) {
	g, gb, ok := parseProfileName(name)
	if !ok {
		return MIGProfile{}, false
	}
	p := MIGProfile{Name: name, ComputeSlices: g, MemoryGB: gb}
	switch g {
	case 1:
		p.MemorySlices, p.Starts = 1, []int{0, 1, 2, 3, 4, 5, 6}
	case 2:
		p.MemorySlices, p.Starts = 2, []int{0, 2, 4}
	case 3:
		p.MemorySlices, p.Starts = 4, []int{0, 4}
	case 4:
		p.MemorySlices, p.Starts = 4, []int{0}
	case 7:
		p.MemorySlices, p.Starts = 8, []int{0}
	default:
		return MIGProfile{}, false
	}
	return p, true
}

// ParseMIGResource returns the MIG profile named by an extended resource
// such as nvidia.com/mig-3g.40gb, and false for any other resource. It checks
// the profile's spelling but not that any product offers it.
func ParseMIGResource(resource string) (profile string, ok bool) {
	profile, found := strings.CutPrefix(resource, MIGResourcePrefix)
	if !found {
		return "", false
	}
	if _, _, ok := parseProfileName(profile); !ok {
		return "", false
	}
	return profile, true
}

// MIGResourceName is the inverse of ParseMIGResource: the extended resource
// name under which the device plugin advertises instances of profile.
func MIGResourceName(profile string) string {
	return MIGResourcePrefix + profile
}
