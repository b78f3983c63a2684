package gpu

import (
	"fmt"
	"slices"
	"strconv"
)

// LocalityLevel is the interconnect locality an allocation of whole GPUs
// achieved, from worst to best, so that a scorer can reward better placements.
type LocalityLevel int

const (
	// LocalityNone means the GPUs span NVLink domains and NUMA nodes.
	LocalityNone LocalityLevel = iota
	// LocalityNUMA means the GPUs share a NUMA node but not an NVLink
	// domain.
	LocalityNUMA
	// LocalityDomain means the GPUs share an NVLink/NVSwitch domain.
	LocalityDomain
)

// String names the level for messages and metrics labels.
func (l LocalityLevel) String() string {
	switch l {
	case LocalityNone:
		return "none"
	case LocalityNUMA:
		return "numa"
	case LocalityDomain:
		return "domain"
	}
	return "LocalityLevel(" + strconv.Itoa(int(l)) + ")"
}

// Placement describes the locality Allocate achieved for the whole GPUs of a
// request.
type Placement struct {
	// Level is the locality achieved. It is LocalityDomain when the request
	// has at most one whole GPU: a single device is trivially local.
	Level LocalityLevel
	// Domain is the NVLink domain that holds all whole GPUs, "" if none does.
	Domain string
	// NUMANode is the NUMA node that holds all whole GPUs, -1 if none does
	// (or the node is unknown). A Domain placement may also have one.
	NUMANode int
}

// Allocate chooses devices for r on the node without changing s. It is
// deterministic: the same state and request always give the same answer.
// The error, when r does not fit, is a FitError (InsufficientGPUs,
// NoLocalDomain, NoMIGSlot, NoShareRoom, UnknownProfile or InvalidRequest).
//
// The parts of r are placed in turn on a working copy, so they never
// overlap: whole GPUs first (they are the hardest to fit), then MIG
// instances largest first, then the share.
//
// Whole GPUs are taken only from GPUs with MIG disabled and nothing on them.
// All of them go into one NVLink domain if one has room, else into one NUMA
// node, else (only with LocalityPreferred) anywhere. At each level the
// best-fitting group is used, the one with the fewest free GPUs that still
// holds them all, so that big groups stay whole for big jobs; inside it the
// GPUs are again kept together by NUMA node, NVLink domain and PCIe switch,
// and ties go to the lowest indices. GPUs that cannot be kept together are
// taken a whole group at a time, largest group first.
//
// A MIG instance is an existing free instance of the profile if there is one
// (on the GPU with the least free capacity, so that emptier GPUs stay open),
// else a new instance on a MIG-dynamic GPU: on the most occupied GPU that has
// room, at the legal start after which the largest profile still fits and
// the most placements of all profiles remain; ties go to the highest start,
// packing small instances from the top so that slice 0, where the large
// profiles start, stays free longest. MIG-static GPUs only offer their
// existing instances.
//
// A share goes to the shared GPU with the least room that still fits it
// (best fit); failing that, to a free GPU, taken from the NVLink domain (and
// then NUMA node) with the fewest free GPUs so that the big ones stay whole.
func (s *NodeState) Allocate(r Request) (Assignment, Placement, error) {
	pl := Placement{Level: LocalityDomain, NUMANode: -1}
	if err := r.Validate(); err != nil {
		return Assignment{}, pl, err
	}
	work := s.Clone()
	var a Assignment
	if r.GPUs > 0 {
		picked, err := work.pickWhole(r.GPUs, r.Locality, r.Near, r.Rest)
		if err != nil {
			return Assignment{}, pl, err
		}
		pl = work.placementOf(picked)
		for _, pos := range picked {
			work.gpus[pos].whole = true
			a.GPUs = append(a.GPUs, work.info.gpus[pos].index)
		}
	}
	units := r.migUnits()
	for i, profile := range units {
		pos, start, ok := work.pickMIG(profile)
		if !ok {
			return Assignment{}, pl, work.migError(profile, units[i:])
		}
		if err := work.addMIG(pos, profile, start); err != nil {
			// pickMIG only proposes slots addMIG accepts; if that is ever
			// broken, refuse rather than over-book.
			return Assignment{}, pl, fmt.Errorf("internal error placing MIG %s: %w", profile, err)
		}
		a.MIG = append(a.MIG, MIGSlot{GPU: work.info.gpus[pos].index, Profile: work.canonicalProfile(pos, profile), Start: start})
	}
	if r.ShareMilli > 0 {
		pos, ok := work.pickShare(r.ShareMilli)
		if !ok {
			return Assignment{}, pl, NoShareRoom{Milli: r.ShareMilli}
		}
		a.Shares = append(a.Shares, Share{GPU: work.info.gpus[pos].index, Milli: r.ShareMilli})
	}
	return a.Normalize(), pl, nil
}

// placementOf reports the locality of the GPUs at the given positions.
func (s *NodeState) placementOf(picked []int) Placement {
	pl := Placement{Level: LocalityNone, NUMANode: -1}
	first := &s.info.gpus[picked[0]]
	sameDomain, sameNUMA := first.domain != "", first.numaKey != ""
	for _, pos := range picked[1:] {
		g := &s.info.gpus[pos]
		sameDomain = sameDomain && g.domain == first.domain
		sameNUMA = sameNUMA && g.numaKey == first.numaKey
	}
	if sameNUMA {
		pl.NUMANode = s.info.topo.GPUs[picked[0]].NUMANode
		pl.Level = LocalityNUMA
	}
	if sameDomain {
		pl.Domain = first.domain
		pl.Level = LocalityDomain
	}
	if len(picked) == 1 {
		pl.Level = LocalityDomain
	}
	return pl
}

// Grouping tiers for whole-GPU selection, in order of preference.
const (
	tierDomain = iota
	tierNUMA
	tierPCIe
)

var allTiers = []int{tierDomain, tierNUMA, tierPCIe}

// groupKey is the GPU's group at a tier; "" means it belongs to none.
func (s *NodeState) groupKey(pos, tier int) string {
	g := &s.info.gpus[pos]
	switch tier {
	case tierDomain:
		return g.domain
	case tierNUMA:
		return g.numaKey
	default:
		return g.pcie
	}
}

// pickWhole chooses k free whole GPUs, as Allocate documents, and returns
// their positions ascending.
func (s *NodeState) pickWhole(k int, loc Locality, near []int, rest int) ([]int, error) {
	var free []int
	for pos := range s.gpus {
		if s.freeWhole(pos) {
			free = append(free, pos)
		}
	}
	if len(free) < k {
		return nil, InsufficientGPUs{Want: k, Free: len(free)}
	}
	picked := s.choose(s.forGroup(free, k, near, rest), k, allTiers)
	slices.Sort(picked)
	if k > 1 && loc == LocalityRequired && s.placementOf(picked).Level == LocalityNone {
		return nil, NoLocalDomain{Want: k}
	}
	return picked, nil
}

// forGroup narrows the free positions a member of a pod group may take its
// k whole GPUs from (see Request.Near and Request.Rest): near the GPUs its
// group holds on the node, where k such GPUs are free; else, for the first
// member, the positions choose would give the whole group (k+rest), when
// they are free. Otherwise, and for a pod outside groups, it returns free.
func (s *NodeState) forGroup(free []int, k int, near []int, rest int) []int {
	if len(near) > 0 {
		var anchors []int
		for _, index := range near {
			if p := s.pos(index); p >= 0 {
				anchors = append(anchors, p)
			}
		}
		same := func(a, b, tier int) bool {
			ka := s.groupKey(a, tier)
			return ka != "" && ka == s.groupKey(b, tier)
		}
		for _, close := range []func(a, b int) bool{
			func(a, b int) bool { return same(a, b, tierDomain) && same(a, b, tierNUMA) },
			func(a, b int) bool { return same(a, b, tierDomain) },
			func(a, b int) bool { return same(a, b, tierNUMA) },
		} {
			var cands []int
			for _, f := range free {
				if slices.ContainsFunc(anchors, func(a int) bool { return close(f, a) }) {
					cands = append(cands, f)
				}
			}
			if len(cands) >= k {
				return cands
			}
		}
		return free
	}
	if rest > 0 && k+rest <= len(free) {
		region := s.choose(free, k+rest, allTiers)
		slices.Sort(region)
		return region
	}
	return free
}

// choose picks k of the candidate positions (ascending), keeping them in one
// group at the first tier where a group can hold all k and recursing into
// that group with the remaining tiers; if no tier can, it spreads them.
func (s *NodeState) choose(cands []int, k int, tiers []int) []int {
	if len(cands) == k {
		return slices.Clone(cands)
	}
	for i, tier := range tiers {
		if g := s.bestFitGroup(cands, k, tier); g != nil {
			return s.choose(g, k, without(tiers, i))
		}
	}
	return s.spread(cands, k, tiers)
}

// bestFitGroup returns the members of the smallest group at tier that has at
// least k candidates (ties: the group whose first member comes first), or nil.
func (s *NodeState) bestFitGroup(cands []int, k, tier int) []int {
	var best []int
	for _, g := range s.groups(cands, tier, false) {
		if len(g) >= k && (best == nil || len(g) < len(best)) {
			best = g
		}
	}
	return best
}

// groups partitions the candidates by their key at tier, in order of first
// appearance. Candidates without a key are left out, or, with singletons,
// each made a group of its own.
func (s *NodeState) groups(cands []int, tier int, singletons bool) [][]int {
	var out [][]int
	var keys []string
	for _, pos := range cands {
		key := s.groupKey(pos, tier)
		if key == "" {
			if singletons {
				out = append(out, []int{pos})
				keys = append(keys, "")
			}
			continue
		}
		i := slices.Index(keys, key)
		if i < 0 {
			out = append(out, nil)
			keys = append(keys, key)
			i = len(out) - 1
		}
		out[i] = append(out[i], pos)
	}
	return out
}

// spread picks k candidates that no single group can hold. It uses the first
// tier at which some group has two or more candidates: while no group can
// hold the rest, it takes the largest group whole; then it takes the rest
// from the best-fitting group. Without such a tier it takes the lowest
// indices.
func (s *NodeState) spread(cands []int, k int, tiers []int) []int {
	ti := -1
	var groups [][]int
	for i, tier := range tiers {
		g := s.groups(cands, tier, true)
		if len(g) < len(cands) {
			ti, groups = i, g
			break
		}
	}
	if ti < 0 {
		return slices.Clone(cands[:k])
	}
	rest := without(tiers, ti)
	var out []int
	need := k
	for need > 0 {
		fit, largest := -1, -1
		for i, g := range groups {
			if g == nil {
				continue
			}
			if len(g) >= need && (fit < 0 || len(g) < len(groups[fit])) {
				fit = i
			}
			if largest < 0 || len(g) > len(groups[largest]) {
				largest = i
			}
		}
		if fit >= 0 {
			out = append(out, s.choose(groups[fit], need, rest)...)
			break
		}
		out = append(out, groups[largest]...)
		need -= len(groups[largest])
		groups[largest] = nil
	}
	slices.Sort(out)
	return out
}

// without returns tiers less the element at i, in a new slice.
func without(tiers []int, i int) []int {
	out := make([]int, 0, len(tiers)-1)
	out = append(out, tiers[:i]...)
	return append(out, tiers[i+1:]...)
}

// pickMIG finds where to hold one instance of profile, as Allocate documents.
func (s *NodeState) pickMIG(profile string) (pos, start int, ok bool) {
	// An existing free instance, on the GPU with the least free capacity.
	bestPos, bestStart, bestFree := -1, 0, 0
	for p := range s.gpus {
		gi, st := &s.info.gpus[p], &s.gpus[p]
		if gi.mode == MIGDisabled {
			continue
		}
		free := gi.usable - int(st.heldSlices)
		for i := range gi.instances {
			inst := &gi.instances[i]
			if st.held&(1<<i) != 0 || !sameProfile(inst.profile.Name, profile) {
				continue
			}
			if bestPos < 0 || free < bestFree {
				bestPos, bestStart, bestFree = p, inst.start, free
			}
			break
		}
	}
	if bestPos >= 0 {
		return bestPos, bestStart, true
	}
	// A new instance on the most occupied MIG-dynamic GPU with room.
	bestPos, bestOccupied := -1, -1
	for p := range s.gpus {
		gi, st := &s.info.gpus[p], &s.gpus[p]
		if gi.mode != MIGDynamic {
			continue
		}
		pi := gi.product.profileIndex(profile)
		if pi < 0 || !canCreate(&gi.product.MIGProfiles[pi], st) {
			continue
		}
		if int(st.compute) > bestOccupied {
			bestPos, bestOccupied = p, int(st.compute)
		}
	}
	if bestPos < 0 {
		return -1, 0, false
	}
	gi, st := &s.info.gpus[bestPos], &s.gpus[bestPos]
	prof := &gi.product.MIGProfiles[gi.product.profileIndex(profile)]
	bestStart, bestMax, bestCount := -1, -1, -1
	for _, start := range prof.Starts {
		mask := prof.slots(start)
		if st.slots&mask != 0 {
			continue
		}
		maxG, count := headroom(gi.product, st.slots|mask, int(st.compute)+prof.ComputeSlices)
		if maxG > bestMax || maxG == bestMax && count >= bestCount {
			bestStart, bestMax, bestCount = start, maxG, count
		}
	}
	return bestPos, bestStart, true
}

// canCreate reports whether a new instance of p fits on a GPU in state st.
func canCreate(p *MIGProfile, st *gpuState) bool {
	if int(st.compute)+p.ComputeSlices > MIGComputeSlices || int(st.nCreated) >= len(st.created) {
		return false
	}
	for _, start := range p.Starts {
		if st.slots&p.slots(start) == 0 {
			return true
		}
	}
	return false
}

// headroom measures what can still be created on a GPU of the product whose
// memory slices slots and compute slices compute are taken: the compute size
// of the largest profile that still fits, and the number of (profile, start)
// placements that still fit.
func headroom(product *Product, slots uint8, compute int) (maxG, placements int) {
	for i := range product.MIGProfiles {
		p := &product.MIGProfiles[i]
		if compute+p.ComputeSlices > MIGComputeSlices {
			continue
		}
		for _, start := range p.Starts {
			if slots&p.slots(start) == 0 {
				placements++
				maxG = max(maxG, p.ComputeSlices)
			}
		}
	}
	return maxG, placements
}

// canonicalProfile returns the catalog spelling of profile on the GPU at
// pos, so that assignments always carry the canonical name.
func (s *NodeState) canonicalProfile(pos int, profile string) string {
	gi := &s.info.gpus[pos]
	if gi.product != nil {
		if i := gi.product.profileIndex(profile); i >= 0 {
			return gi.product.MIGProfiles[i].Name
		}
	}
	for i := range gi.instances {
		if sameProfile(gi.instances[i].profile.Name, profile) {
			return gi.instances[i].profile.Name
		}
	}
	return profile
}

// migError explains why no instance of profile could be placed; remaining
// are the MIG units not yet placed, starting with this one.
func (s *NodeState) migError(profile string, remaining []string) error {
	offered := false
	for pos := range s.gpus {
		gi := &s.info.gpus[pos]
		if gi.product != nil && gi.product.profileIndex(profile) >= 0 {
			offered = true
		}
		for i := range gi.instances {
			if sameProfile(gi.instances[i].profile.Name, profile) {
				offered = true
			}
		}
	}
	if !offered {
		return UnknownProfile{Profile: profile}
	}
	want := 0
	for _, p := range remaining {
		if p == profile {
			want++
		}
	}
	return NoMIGSlot{Profile: profile, Want: want}
}

// pickShare finds the GPU for a share of milli, as Allocate documents.
func (s *NodeState) pickShare(milli int) (int, bool) {
	best, bestRoom := -1, 0
	for pos := range s.gpus {
		gi, st := &s.info.gpus[pos], &s.gpus[pos]
		if gi.mode != MIGDisabled || st.whole || st.shares == 0 {
			continue
		}
		room := 1000 - int(st.shareMilli)
		if room >= milli && (best < 0 || room < bestRoom) {
			best, bestRoom = pos, room
		}
	}
	if best >= 0 {
		return best, true
	}
	bestDomain, bestNUMA := 0, 0
	for pos := range s.gpus {
		if !s.freeWhole(pos) {
			continue
		}
		d, n := s.freeInGroup(pos, tierDomain), s.freeInGroup(pos, tierNUMA)
		if best < 0 || d < bestDomain || d == bestDomain && n < bestNUMA {
			best, bestDomain, bestNUMA = pos, d, n
		}
	}
	return best, best >= 0
}

// freeInGroup counts the free whole GPUs in the GPU's group at tier; a GPU
// without a group counts as a group of one.
func (s *NodeState) freeInGroup(pos, tier int) int {
	key := s.groupKey(pos, tier)
	if key == "" {
		return 1
	}
	n := 0
	for p := range s.gpus {
		if s.freeWhole(p) && s.groupKey(p, tier) == key {
			n++
		}
	}
	return n
}
