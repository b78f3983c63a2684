package gpu

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestAllocateProperties drives random requests against random topologies,
// allocating, adding and removing, and after every step recomputes from the
// live assignments alone that nothing is over-booked and that Allocate
// refuses only what a brute-force search cannot place either.
func TestAllocateProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(20240611, 7))
	stats := map[string]int{}
	const topologies, steps = 300, 150
	for n := 0; n < topologies; n++ {
		topo := randomTopology(rng)
		if err := topo.Validate(); err != nil {
			t.Fatalf("random topology invalid: %v\n%+v", err, topo)
		}
		p := &propertyRun{t: t, topo: topo, s: NewNodeState(topo), stats: stats}
		for step := 0; step < steps; step++ {
			p.where = fmt.Sprintf("topology %d step %d", n, step)
			if len(p.live) > 0 && rng.IntN(10) < 3 {
				i := rng.IntN(len(p.live))
				p.s.Remove(p.live[i])
				p.live = slices.Delete(p.live, i, i+1)
			} else {
				p.request(randomRequest(rng, topo))
			}
			p.checkInvariants()
		}
	}
	t.Logf("outcomes: %v", stats)
	// Make sure the random mix exercised both sides of every check.
	for _, k := range []string{"whole ok", "whole no fit", "whole required ok", "whole required no fit", "share ok", "share no fit", "mig ok", "mig no fit", "combined ok", "combined no fit"} {
		if stats[k] < 20 {
			t.Errorf("only %d cases of %q", stats[k], k)
		}
	}
}

var propertyProducts = []string{"NVIDIA-A100-SXM4-40GB", "NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL", "NVIDIA-B200", "T4"}

func randomTopology(rng *rand.Rand) Topology {
	product := propertyProducts[rng.IntN(len(propertyProducts))]
	topo := DefaultTopology(product, 1+rng.IntN(8))
	if rng.IntN(4) == 0 {
		for i := range topo.GPUs {
			topo.GPUs[i].NUMANode = -1
		}
	}
	p := lookupProduct(product)
	if p == nil {
		return topo
	}
	for i := range topo.GPUs {
		switch rng.IntN(3) {
		case 0:
			continue
		case 1:
			topo.GPUs[i].MIG = MIGStatic
		case 2:
			topo.GPUs[i].MIG = MIGDynamic
		}
		// A random legal layout, sometimes empty on dynamic GPUs.
		var used uint8
		compute := 0
		for try := rng.IntN(6); try > 0; try-- {
			m := p.MIGProfiles[rng.IntN(len(p.MIGProfiles))]
			start := m.Starts[rng.IntN(len(m.Starts))]
			if used&m.slots(start) != 0 || compute+m.ComputeSlices > MIGComputeSlices {
				continue
			}
			used |= m.slots(start)
			compute += m.ComputeSlices
			topo.GPUs[i].Instances = append(topo.GPUs[i].Instances, MIGInstance{m.Name, start})
		}
	}
	return topo
}

func randomRequest(rng *rand.Rand, topo Topology) Request {
	var r Request
	profiles := []string{"1g.5gb", "3g.40gb", "2g.20gb", "1g.10gb"}
	if p := lookupProduct(topo.GPUs[0].Product); p != nil {
		for _, m := range p.MIGProfiles {
			profiles = append(profiles, m.Name, m.Name)
		}
	}
	switch rng.IntN(10) {
	case 0, 1, 2:
		r.GPUs = 1 + rng.IntN(len(topo.GPUs))
	case 3, 4, 5:
		r.ShareMilli = 1 + rng.IntN(999)
	case 6, 7, 8:
		r.MIG = []MIGRequest{{profiles[rng.IntN(len(profiles))], 1}}
	default:
		r.GPUs = rng.IntN(2)
		r.ShareMilli = rng.IntN(600)
		r.MIG = []MIGRequest{{profiles[rng.IntN(len(profiles))], rng.IntN(3)}}
	}
	if rng.IntN(3) == 0 {
		r.Locality = LocalityRequired
	}
	return r
}

type propertyRun struct {
	t     *testing.T
	where string
	topo  Topology
	s     *NodeState
	live  []Assignment
	stats map[string]int
}

func (p *propertyRun) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("%s: %s\ntopology %+v\nlive %+v", p.where, fmt.Sprintf(format, args...), p.topo, p.live)
}

func (p *propertyRun) request(r Request) {
	p.t.Helper()
	a, pl, err := p.s.Allocate(r)
	if err == nil {
		if addErr := p.s.Add(a); addErr != nil {
			p.fatalf("Allocate(%+v) = %+v, which Add refuses: %v", r, a, addErr)
		}
		p.live = append(p.live, a)
		p.checkMatches(r, a, pl)
	} else if _, ok := err.(FitError); !ok {
		p.fatalf("Allocate(%+v) error %v is not a FitError", r, err)
	}
	// Single-part requests: Allocate fails exactly when brute force finds
	// no place either (the state before the request is the live list
	// without a).
	live := p.live
	if err == nil {
		live = live[:len(live)-1]
	}
	u := p.usage(live)
	var fits bool
	kind := "combined"
	defer func() {
		if err == nil {
			p.stats[kind+" ok"]++
		} else {
			p.stats[kind+" no fit"]++
		}
	}()
	switch {
	case r.GPUs > 0 && r.ShareMilli == 0 && len(r.MIG) == 0:
		anyFit, localFit, domainFit := u.bruteWhole(r.GPUs)
		kind, fits = "whole", anyFit
		if r.Locality == LocalityRequired {
			kind, fits = "whole required", localFit
		}
		if err == nil && domainFit && pl.Level != LocalityDomain {
			p.fatalf("Allocate(%+v) reached %v, but %d GPUs fit in one domain", r, pl.Level, r.GPUs)
		}
		if err == nil && localFit && pl.Level == LocalityNone {
			p.fatalf("Allocate(%+v) reached no locality, but %d GPUs fit in one domain or NUMA node", r, r.GPUs)
		}
	case r.GPUs == 0 && r.ShareMilli > 0 && len(r.MIG) == 0:
		kind, fits = "share", u.bruteShare(r.ShareMilli)
	case r.GPUs == 0 && r.ShareMilli == 0 && len(r.MIG) == 1 && r.MIG[0].Count == 1:
		kind, fits = "mig", u.bruteMIG(r.MIG[0].Profile)
	default:
		return
	}
	if fits != (err == nil) {
		p.fatalf("Allocate(%+v) = %+v, %v; brute force says fits = %v", r, a, err, fits)
	}
	if err != nil {
		var insufficient InsufficientGPUs
		if errors.As(err, &insufficient) && insufficient.Free != u.freeWhole() {
			p.fatalf("InsufficientGPUs.Free = %d, brute force counts %d", insufficient.Free, u.freeWhole())
		}
	}
}

// checkMatches checks that a is what r asked for.
func (p *propertyRun) checkMatches(r Request, a Assignment, pl Placement) {
	p.t.Helper()
	if len(a.GPUs) != r.GPUs {
		p.fatalf("Allocate(%+v) gave %d whole GPUs", r, len(a.GPUs))
	}
	if r.ShareMilli > 0 && (len(a.Shares) != 1 || a.Shares[0].Milli != r.ShareMilli) || r.ShareMilli == 0 && len(a.Shares) != 0 {
		p.fatalf("Allocate(%+v) gave shares %+v", r, a.Shares)
	}
	var want, got []string
	for _, m := range r.MIG {
		for i := 0; i < m.Count; i++ {
			want = append(want, m.Profile)
		}
	}
	for _, m := range a.MIG {
		got = append(got, m.Profile)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		p.fatalf("Allocate(%+v) gave MIG %+v", r, a.MIG)
	}
	if r.Locality == LocalityRequired && r.GPUs > 1 && pl.Level == LocalityNone {
		p.fatalf("Allocate(%+v) ignored required locality: %+v", r, pl)
	}
}

// usage is the node's use recomputed from a list of assignments, without
// NodeState.
type usage struct {
	topo    Topology
	whole   map[int]int
	shares  map[int]int
	mig     map[int][]MIGSlot
	modeUse map[int]map[string]bool
}

func (p *propertyRun) usage(live []Assignment) usage {
	u := usage{topo: p.topo, whole: map[int]int{}, shares: map[int]int{}, mig: map[int][]MIGSlot{}, modeUse: map[int]map[string]bool{}}
	mark := func(gpu int, how string) {
		if u.modeUse[gpu] == nil {
			u.modeUse[gpu] = map[string]bool{}
		}
		u.modeUse[gpu][how] = true
	}
	for _, a := range live {
		for _, g := range a.GPUs {
			u.whole[g]++
			mark(g, "whole")
		}
		for _, sh := range a.Shares {
			u.shares[sh.GPU] += sh.Milli
			mark(sh.GPU, "shares")
		}
		for _, m := range a.MIG {
			u.mig[m.GPU] = append(u.mig[m.GPU], m)
			mark(m.GPU, "mig")
		}
	}
	return u
}

func (u usage) gpu(index int) GPU {
	for _, g := range u.topo.GPUs {
		if g.Index == index {
			return g
		}
	}
	panic("no GPU")
}

// geometry resolves a profile on a GPU as the catalog (or the name) says.
func geometryOf(g GPU, profile string) MIGProfile {
	m, ok := resolveProfile(lookupProduct(g.Product), profile)
	if !ok {
		panic("unresolvable profile " + profile)
	}
	return m
}

// effectiveDynamic is whether new instances may be created on g.
func effectiveDynamic(g GPU) bool {
	return g.MIG == MIGDynamic && lookupProduct(g.Product) != nil
}

func (u usage) isFreeWhole(g GPU) bool {
	return g.MIG == MIGDisabled && u.whole[g.Index] == 0 && u.shares[g.Index] == 0
}

func (u usage) freeWhole() int {
	n := 0
	for _, g := range u.topo.GPUs {
		if u.isFreeWhole(g) {
			n++
		}
	}
	return n
}

// bruteWhole enumerates every subset of k GPUs.
func (u usage) bruteWhole(k int) (anyFit, localFit, domainFit bool) {
	gpus := u.topo.GPUs
	for mask := uint(0); mask < 1<<len(gpus); mask++ {
		if bits.OnesCount(mask) != k {
			continue
		}
		ok, domains, numas := true, map[string]bool{}, map[int]bool{}
		for i, g := range gpus {
			if mask&(1<<i) == 0 {
				continue
			}
			ok = ok && u.isFreeWhole(g)
			domains[g.Domain] = true
			numas[g.NUMANode] = true
		}
		if !ok {
			continue
		}
		anyFit = true
		inDomain := len(domains) == 1 && !domains[""]
		inNUMA := len(numas) == 1 && !numas[-1]
		domainFit = domainFit || inDomain || k == 1
		localFit = localFit || inDomain || inNUMA || k == 1
	}
	return anyFit, localFit, domainFit
}

func (u usage) bruteShare(milli int) bool {
	for _, g := range u.topo.GPUs {
		if g.MIG == MIGDisabled && u.whole[g.Index] == 0 && u.shares[g.Index]+milli <= 1000 {
			return true
		}
	}
	return false
}

// occupied is the memory-slice mask and compute of g's existing instances
// plus the live slots that are not existing instances.
func (u usage) occupied(g GPU) (mask uint8, compute int) {
	for _, inst := range g.Instances {
		m := geometryOf(g, inst.Profile)
		mask |= m.slots(inst.Start)
		compute += m.ComputeSlices
	}
	for _, s := range u.mig[g.Index] {
		if isExisting(g, s) {
			continue
		}
		m := geometryOf(g, s.Profile)
		mask |= m.slots(s.Start)
		compute += m.ComputeSlices
	}
	return mask, compute
}

func isExisting(g GPU, s MIGSlot) bool {
	for _, inst := range g.Instances {
		if inst.Start == s.Start && geometryOf(g, inst.Profile).Name == geometryOf(g, s.Profile).Name {
			return true
		}
	}
	return false
}

func (u usage) bruteMIG(profile string) bool {
	for _, g := range u.topo.GPUs {
		if g.MIG == MIGDisabled {
			continue
		}
		for _, inst := range g.Instances {
			held := false
			for _, s := range u.mig[g.Index] {
				held = held || s.Start == inst.Start
			}
			if inst.Profile == profile && !held {
				return true
			}
		}
		if !effectiveDynamic(g) {
			continue
		}
		m, ok := lookupProduct(g.Product).Profile(profile)
		if !ok {
			continue
		}
		mask, compute := u.occupied(g)
		for start := 0; start < MIGMemorySlices; start++ {
			if m.LegalStart(start) && mask&m.slots(start) == 0 && compute+m.ComputeSlices <= MIGComputeSlices {
				return true
			}
		}
	}
	return false
}

func (p *propertyRun) checkInvariants() {
	p.t.Helper()
	u := p.usage(p.live)
	var wantFree int64
	for _, g := range p.topo.GPUs {
		if len(u.modeUse[g.Index]) > 1 {
			p.fatalf("gpu %d used in several ways: %v", g.Index, u.modeUse[g.Index])
		}
		if u.whole[g.Index] > 1 {
			p.fatalf("gpu %d held whole %d times", g.Index, u.whole[g.Index])
		}
		if u.shares[g.Index] > 1000 {
			p.fatalf("gpu %d shared %dm", g.Index, u.shares[g.Index])
		}
		if g.MIG == MIGDisabled {
			if len(u.mig[g.Index]) > 0 {
				p.fatalf("gpu %d has MIG disabled but holds %+v", g.Index, u.mig[g.Index])
			}
			wantFree += 1000 - int64(u.shares[g.Index]) - 1000*int64(u.whole[g.Index])
			continue
		}
		if u.whole[g.Index]+u.shares[g.Index] > 0 {
			p.fatalf("MIG gpu %d used whole or shared", g.Index)
		}
		// No two held slots overlap, none overlaps an existing instance
		// other than itself, and compute stays within 7.
		var held uint8
		heldSlices := 0
		for _, s := range u.mig[g.Index] {
			m := geometryOf(g, s.Profile)
			if !m.LegalStart(s.Start) {
				p.fatalf("gpu %d: illegal slot %+v", g.Index, s)
			}
			if held&m.slots(s.Start) != 0 {
				p.fatalf("gpu %d: slot %+v overlaps another held slot", g.Index, s)
			}
			held |= m.slots(s.Start)
			heldSlices += m.ComputeSlices
			if !isExisting(g, s) {
				if !effectiveDynamic(g) {
					p.fatalf("gpu %d: slot %+v created on a static GPU", g.Index, s)
				}
				for _, inst := range g.Instances {
					if geometryOf(g, inst.Profile).slots(inst.Start)&m.slots(s.Start) != 0 {
						p.fatalf("gpu %d: created slot %+v overlaps existing %+v", g.Index, s, inst)
					}
				}
			}
		}
		if _, compute := u.occupied(g); compute > MIGComputeSlices {
			p.fatalf("gpu %d uses %d compute slices", g.Index, compute)
		}
		usable := MIGComputeSlices
		if !effectiveDynamic(g) {
			usable = 0
			for _, inst := range g.Instances {
				usable += geometryOf(g, inst.Profile).ComputeSlices
			}
		}
		wantFree += int64(usable-heldSlices) * 1000 / MIGComputeSlices
	}
	if got := p.s.FreeMilli(); got != wantFree {
		p.fatalf("FreeMilli() = %d, recomputed %d", got, wantFree)
	}
	if got, want := p.s.UsedMilli(), p.s.Capacity()-wantFree; got != want {
		p.fatalf("UsedMilli() = %d, want %d", got, want)
	}
	// Removing is the exact inverse of adding: rebuilding from the live
	// list gives the same state.
	fresh := NewNodeState(p.topo)
	for _, a := range p.live {
		if err := fresh.Add(a); err != nil {
			p.fatalf("rebuilding: %v", err)
		}
	}
	if !reflect.DeepEqual(fresh.GPUs(), p.s.GPUs()) {
		p.fatalf("state after removals differs from a rebuilt one:\n%+v\n%+v", p.s.GPUs(), fresh.GPUs())
	}
}
