package gpu

import (
	"fmt"
	"slices"
	"strconv"
)

// NodeState is the free/used view of one node's GPUs: its Topology plus the
// Assignments of the pods bound to it. The scheduler keeps one per node,
// Clones it for a scheduling cycle and asks it where a request fits and how
// much a placement would fragment the node.
//
// A NodeState is not safe for concurrent mutation; concurrent reads are
// fine. Its static part is shared between clones, so Clone is cheap.
type NodeState struct {
	info *nodeInfo
	gpus []gpuState // parallel to info.gpus
}

// nodeInfo is the immutable part of a NodeState, shared by its clones.
type nodeInfo struct {
	topo Topology  // deep copy of the input, sorted by index, duplicates dropped
	gpus []gpuInfo // parallel to topo.GPUs
}

// gpuInfo is what NodeState needs to know about one GPU's hardware, resolved
// once.
type gpuInfo struct {
	index     int
	product   *Product // nil when the catalog does not know it
	mode      MIGMode  // effective mode; see NewNodeState
	numaKey   string   // NUMA node as a grouping key, "" when unknown
	domain    string
	pcie      string
	instances []instanceInfo // existing MIG instances, by start
	// usable is the number of compute slices that can ever be handed out: 7
	// on a MIG-dynamic GPU, the existing instances' on a MIG-static one.
	usable int
}

// instanceInfo is an existing MIG instance with its geometry resolved.
type instanceInfo struct {
	profile MIGProfile // Name is canonical for known products
	start   int
	slots   uint8
}

// gpuState is the mutable part of one GPU. It holds no pointers, so copying
// a slice of them is a deep copy.
type gpuState struct {
	whole      bool
	shares     int32 // number of shares held
	shareMilli int32 // milli-GPUs held by shares
	held       uint8 // bit i: instances[i] is held by an assignment
	slots      uint8 // memory slices taken by existing and created instances
	compute    int8  // compute slices of existing and created instances
	heldSlices int8  // compute slices held by assignments
	nCreated   int8
	created    [MIGComputeSlices]createdSlot // instances made for assignments on a MIG-dynamic GPU
}

// createdSlot is a MIG instance that does not exist in the topology but is
// held by an assignment; profile indexes the product's MIGProfiles.
type createdSlot struct {
	profile int8
	start   int8
}

// NewNodeState builds the state of a node with nothing in use. It does not
// fail on an invalid topology (call Topology.Validate for that) but handles
// it conservatively: of GPUs with the same index only the first counts; MIG
// instances on a MIG-disabled GPU are ignored; instances that are malformed,
// illegally placed or overlap an earlier one are dropped. A MIG GPU whose
// product the catalog does not know (or knows without MIG) is treated as
// MIGStatic with geometry inferred from the profile names, because new
// instances cannot be placed safely without the real geometry; an invalid
// MIG mode is treated as MIGStatic too.
func NewNodeState(t Topology) *NodeState {
	topo := t.Clone()
	slices.SortStableFunc(topo.GPUs, func(a, b GPU) int { return a.Index - b.Index })
	topo.GPUs = slices.CompactFunc(topo.GPUs, func(a, b GPU) bool { return a.Index == b.Index })
	info := &nodeInfo{topo: topo, gpus: make([]gpuInfo, len(topo.GPUs))}
	s := &NodeState{info: info, gpus: make([]gpuState, len(topo.GPUs))}
	for i, g := range topo.GPUs {
		gi := gpuInfo{
			index:   g.Index,
			product: lookupProduct(g.Product),
			mode:    g.MIG,
			domain:  g.Domain,
			pcie:    g.PCIeSwitch,
		}
		if g.NUMANode >= 0 {
			gi.numaKey = strconv.Itoa(g.NUMANode)
		}
		if gi.mode != MIGDisabled {
			s.gpus[i] = gi.resolveInstances(g.Instances)
		}
		info.gpus[i] = gi
	}
	return s
}

// resolveInstances fixes the effective MIG mode and the usable instances of
// a MIG GPU and returns its initial state.
func (gi *gpuInfo) resolveInstances(instances []MIGInstance) gpuState {
	var st gpuState
	geometry := gi.product
	if geometry != nil && !geometry.MIGCapable() {
		geometry = nil
	}
	if gi.mode != MIGDynamic && gi.mode != MIGStatic || geometry == nil {
		gi.mode = MIGStatic
	}
	ordered := slices.Clone(instances)
	slices.SortStableFunc(ordered, func(a, b MIGInstance) int { return a.Start - b.Start })
	for _, inst := range ordered {
		p, ok := resolveProfile(geometry, inst.Profile)
		if !ok || !p.LegalStart(inst.Start) {
			continue
		}
		mask := p.slots(inst.Start)
		if st.slots&mask != 0 || int(st.compute)+p.ComputeSlices > MIGComputeSlices {
			continue
		}
		st.slots |= mask
		st.compute += int8(p.ComputeSlices)
		gi.instances = append(gi.instances, instanceInfo{profile: p, start: inst.Start, slots: mask})
	}
	if gi.mode == MIGDynamic {
		gi.usable = MIGComputeSlices
	} else {
		gi.usable = int(st.compute)
	}
	return st
}

// Clone returns an independent copy of s for trying allocations without
// touching the original. The static topology is shared, not copied.
func (s *NodeState) Clone() *NodeState {
	return &NodeState{info: s.info, gpus: slices.Clone(s.gpus)}
}

// Topology returns a copy of the topology s was built from, sorted by GPU
// index, with duplicate indices dropped.
func (s *NodeState) Topology() Topology {
	return s.info.topo.Clone()
}

// GPUCount is the number of GPUs on the node.
func (s *NodeState) GPUCount() int {
	return len(s.gpus)
}

// FreeWholeGPUs counts the GPUs a whole-GPU request could take: MIG disabled
// and nothing on them.
func (s *NodeState) FreeWholeGPUs() int {
	n := 0
	for i := range s.gpus {
		if s.freeWhole(i) {
			n++
		}
	}
	return n
}

// FreeMilli is the node's free GPU capacity in milli-GPUs: 1000 for each free
// MIG-disabled GPU, the room left on shared ones, and on MIG GPUs the free
// usable compute slices as 1000*free/7 (on a MIG-static GPU only the slices
// of its unheld instances are usable).
func (s *NodeState) FreeMilli() int64 {
	var n int64
	for i := range s.gpus {
		n += s.freeMilli(i)
	}
	return n
}

// Capacity is the node's total GPU capacity in milli-GPUs, counted like
// FreeMilli on an empty node. A MIG-static GPU counts only the compute
// slices of its instances, since the rest can never be used.
func (s *NodeState) Capacity() int64 {
	var n int64
	for i := range s.gpus {
		n += s.capacity(i)
	}
	return n
}

// UsedMilli is Capacity minus FreeMilli.
func (s *NodeState) UsedMilli() int64 {
	return s.Capacity() - s.FreeMilli()
}

func (s *NodeState) capacity(pos int) int64 {
	if s.info.gpus[pos].mode == MIGDisabled {
		return 1000
	}
	return slicesMilli(s.info.gpus[pos].usable)
}

func (s *NodeState) freeMilli(pos int) int64 {
	st := &s.gpus[pos]
	if s.info.gpus[pos].mode == MIGDisabled {
		if st.whole {
			return 0
		}
		return 1000 - int64(st.shareMilli)
	}
	return slicesMilli(s.info.gpus[pos].usable - int(st.heldSlices))
}

// freeWhole reports whether the GPU at pos can be taken whole.
func (s *NodeState) freeWhole(pos int) bool {
	st := &s.gpus[pos]
	return s.info.gpus[pos].mode == MIGDisabled && !st.whole && st.shares == 0
}

// slicesMilli converts MIG compute slices to milli-GPUs.
func slicesMilli(n int) int64 {
	return int64(n) * 1000 / MIGComputeSlices
}

// pos finds the position of the GPU with the given index, or -1.
func (s *NodeState) pos(index int) int {
	i, ok := slices.BinarySearchFunc(s.info.gpus, index, func(g gpuInfo, idx int) int { return g.index - idx })
	if !ok {
		return -1
	}
	return i
}

// Add records that a pod holds a. It fails, naming the device, and records
// nothing if a names a GPU the node lacks or would double-book a whole GPU,
// hold a MIG instance twice or overlap one, place an instance a MIG-static
// GPU does not have, exceed 1000 milli on a shared GPU, or use a GPU in two
// ways (whole, by shares, by MIG).
func (s *NodeState) Add(a Assignment) error {
	before := slices.Clone(s.gpus)
	if err := s.apply(a); err != nil {
		copy(s.gpus, before)
		return err
	}
	return nil
}

// apply performs Add's changes one by one. On error it leaves s partly
// changed; callers restore or discard s.
func (s *NodeState) apply(a Assignment) error {
	for _, idx := range a.GPUs {
		pos, err := s.lookup(idx)
		if err != nil {
			return err
		}
		if err := s.checkWhole(pos); err != nil {
			return err
		}
		s.gpus[pos].whole = true
	}
	for _, m := range a.MIG {
		pos, err := s.lookup(m.GPU)
		if err != nil {
			return err
		}
		if err := s.addMIG(pos, m.Profile, m.Start); err != nil {
			return err
		}
	}
	for _, sh := range a.Shares {
		pos, err := s.lookup(sh.GPU)
		if err != nil {
			return err
		}
		if err := s.checkShare(pos, sh.Milli); err != nil {
			return err
		}
		st := &s.gpus[pos]
		st.shares++
		st.shareMilli += int32(sh.Milli)
	}
	return nil
}

func (s *NodeState) lookup(index int) (int, error) {
	pos := s.pos(index)
	if pos < 0 {
		return -1, fmt.Errorf("gpu %d does not exist on this node", index)
	}
	return pos, nil
}

// checkWhole says why the GPU at pos cannot be taken whole, or nil.
func (s *NodeState) checkWhole(pos int) error {
	gi, st := &s.info.gpus[pos], &s.gpus[pos]
	switch {
	case gi.mode != MIGDisabled:
		return fmt.Errorf("gpu %d has MIG enabled and cannot be used whole", gi.index)
	case st.whole:
		return fmt.Errorf("gpu %d is already used whole", gi.index)
	case st.shares > 0:
		return fmt.Errorf("gpu %d is shared (%dm held) and cannot be used whole", gi.index, st.shareMilli)
	}
	return nil
}

// checkShare says why the GPU at pos cannot take a share of milli, or nil.
func (s *NodeState) checkShare(pos, milli int) error {
	gi, st := &s.info.gpus[pos], &s.gpus[pos]
	switch {
	case milli < 1 || milli > 999:
		return fmt.Errorf("gpu %d: share of %dm is out of range 1..999", gi.index, milli)
	case gi.mode != MIGDisabled:
		return fmt.Errorf("gpu %d has MIG enabled and cannot be shared", gi.index)
	case st.whole:
		return fmt.Errorf("gpu %d is used whole and cannot be shared", gi.index)
	case int(st.shareMilli)+milli > 1000:
		return fmt.Errorf("gpu %d: share of %dm exceeds the %dm free", gi.index, milli, 1000-st.shareMilli)
	}
	return nil
}

// addMIG holds the instance of profile at start on the GPU at pos: an
// existing one if it is there, else a new one on a MIG-dynamic GPU.
func (s *NodeState) addMIG(pos int, profile string, start int) error {
	gi, st := &s.info.gpus[pos], &s.gpus[pos]
	if gi.mode == MIGDisabled {
		return fmt.Errorf("gpu %d has MIG disabled; cannot hold MIG %s", gi.index, profile)
	}
	if i := gi.instanceAt(profile, start); i >= 0 {
		if st.held&(1<<i) != 0 {
			return fmt.Errorf("gpu %d: MIG %s at %d is already held", gi.index, profile, start)
		}
		st.held |= 1 << i
		st.heldSlices += int8(gi.instances[i].profile.ComputeSlices)
		return nil
	}
	if gi.mode != MIGDynamic {
		return fmt.Errorf("gpu %d is MIG-static and has no MIG %s instance at %d", gi.index, profile, start)
	}
	pi := gi.product.profileIndex(profile)
	if pi < 0 {
		return fmt.Errorf("gpu %d: MIG profile %q is not offered by %s", gi.index, profile, gi.product.Name)
	}
	p := &gi.product.MIGProfiles[pi]
	if !p.LegalStart(start) {
		return fmt.Errorf("gpu %d: MIG %s cannot start at memory slice %d (legal starts %v)", gi.index, p.Name, start, p.Starts)
	}
	mask := p.slots(start)
	if st.slots&mask != 0 {
		return fmt.Errorf("gpu %d: MIG %s at %d overlaps an existing or held instance", gi.index, p.Name, start)
	}
	if int(st.compute)+p.ComputeSlices > MIGComputeSlices || int(st.nCreated) >= len(st.created) {
		return fmt.Errorf("gpu %d: MIG %s at %d would use more than %d compute slices", gi.index, p.Name, start, MIGComputeSlices)
	}
	st.slots |= mask
	st.compute += int8(p.ComputeSlices)
	st.heldSlices += int8(p.ComputeSlices)
	st.created[st.nCreated] = createdSlot{profile: int8(pi), start: int8(start)}
	st.nCreated++
	return nil
}

// instanceAt finds the existing instance of profile at start, or -1.
func (gi *gpuInfo) instanceAt(profile string, start int) int {
	for i := range gi.instances {
		if gi.instances[i].start == start && sameProfile(gi.instances[i].profile.Name, profile) {
			return i
		}
	}
	return -1
}

// sameProfile compares profile names; catalog names are lower case, so an
// ASCII case fold is enough and does not allocate.
func sameProfile(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Remove releases what a holds. It must be given an assignment that was
// added before; parts of a that are not currently held are ignored, so
// removing twice does no harm to other pods' whole GPUs and MIG instances.
// Shares carry no owner, so removing a share that was never added releases
// room held by another pod.
func (s *NodeState) Remove(a Assignment) {
	for _, idx := range a.GPUs {
		if pos := s.pos(idx); pos >= 0 {
			s.gpus[pos].whole = false
		}
	}
	for _, m := range a.MIG {
		if pos := s.pos(m.GPU); pos >= 0 {
			s.removeMIG(pos, m.Profile, m.Start)
		}
	}
	for _, sh := range a.Shares {
		pos := s.pos(sh.GPU)
		if pos < 0 || s.gpus[pos].shares == 0 {
			continue
		}
		st := &s.gpus[pos]
		st.shares--
		st.shareMilli = max(0, st.shareMilli-int32(sh.Milli))
		if st.shares == 0 {
			st.shareMilli = 0
		}
	}
}

func (s *NodeState) removeMIG(pos int, profile string, start int) {
	gi, st := &s.info.gpus[pos], &s.gpus[pos]
	if i := gi.instanceAt(profile, start); i >= 0 {
		if st.held&(1<<i) != 0 {
			st.held &^= 1 << i
			st.heldSlices -= int8(gi.instances[i].profile.ComputeSlices)
		}
		return
	}
	if gi.product == nil {
		return
	}
	for i := 0; i < int(st.nCreated); i++ {
		c := st.created[i]
		p := &gi.product.MIGProfiles[c.profile]
		if int(c.start) != start || !sameProfile(p.Name, profile) {
			continue
		}
		st.slots &^= p.slots(start)
		st.compute -= int8(p.ComputeSlices)
		st.heldSlices -= int8(p.ComputeSlices)
		copy(st.created[i:], st.created[i+1:st.nCreated])
		st.nCreated--
		st.created[st.nCreated] = createdSlot{}
		return
	}
}

// AddUnknown accounts for a pod whose devices are not known, typically one
// bound by another scheduler without an assignment annotation. It allocates
// r as Allocate would (ignoring locality, since the pod already runs
// somewhere) and records the result, so that the node is never over-booked;
// the guess is deterministic, so every scheduler replica makes the same one.
// If r does not fit, nothing is recorded and Allocate's error is returned:
// the node is over-booked already and the caller should treat its GPUs as
// full.
func (s *NodeState) AddUnknown(r Request) (Assignment, error) {
	r.Locality = LocalityPreferred
	a, _, err := s.Allocate(r)
	if err != nil {
		return Assignment{}, err
	}
	if err := s.Add(a); err != nil {
		return Assignment{}, fmt.Errorf("recording guessed assignment: %w", err)
	}
	return a, nil
}

// GPUUse says how a GPU is in use right now.
type GPUUse int

const (
	// UseFree means no assignment holds anything on the GPU.
	UseFree GPUUse = iota
	// UseWhole means one pod holds the GPU whole.
	UseWhole
	// UseShared means one or more pods hold shares of the GPU.
	UseShared
	// UseMIG means one or more MIG instances of the GPU are held.
	UseMIG
)

// String names the use for displays.
func (u GPUUse) String() string {
	switch u {
	case UseFree:
		return "free"
	case UseWhole:
		return "whole"
	case UseShared:
		return "shared"
	case UseMIG:
		return "mig"
	}
	return "GPUUse(" + strconv.Itoa(int(u)) + ")"
}

// MIGStatus is one MIG instance of a GPU as the node sees it now.
type MIGStatus struct {
	Profile string
	Start   int
	// Existing is true for an instance of the topology, false for one
	// created for an assignment on a MIG-dynamic GPU.
	Existing bool
	// Held is true when an assignment holds the instance.
	Held bool
}

// GPUStatus is one GPU's static description and current use, for displays
// such as the playground and for debugging a placement.
type GPUStatus struct {
	GPU           GPU
	Use           GPUUse
	Shares        int // number of shares held
	SharedMilli   int // milli-GPUs held by shares
	MIG           []MIGStatus
	FreeMilli     int64
	CapacityMilli int64
}

// GPUs describes every GPU, ascending by index.
func (s *NodeState) GPUs() []GPUStatus {
	out := make([]GPUStatus, len(s.gpus))
	for pos := range s.gpus {
		gi, st := &s.info.gpus[pos], &s.gpus[pos]
		gs := GPUStatus{
			GPU:           s.info.topo.GPUs[pos],
			Shares:        int(st.shares),
			SharedMilli:   int(st.shareMilli),
			FreeMilli:     s.freeMilli(pos),
			CapacityMilli: s.capacity(pos),
		}
		gs.GPU.Instances = slices.Clone(gs.GPU.Instances)
		for i, inst := range gi.instances {
			gs.MIG = append(gs.MIG, MIGStatus{Profile: inst.profile.Name, Start: inst.start, Existing: true, Held: st.held&(1<<i) != 0})
		}
		for i := 0; i < int(st.nCreated); i++ {
			c := st.created[i]
			gs.MIG = append(gs.MIG, MIGStatus{Profile: gi.product.MIGProfiles[c.profile].Name, Start: int(c.start), Held: true})
		}
		slices.SortFunc(gs.MIG, func(a, b MIGStatus) int { return a.Start - b.Start })
		switch {
		case st.whole:
			gs.Use = UseWhole
		case st.shares > 0:
			gs.Use = UseShared
		case st.heldSlices > 0:
			gs.Use = UseMIG
		}
		out[pos] = gs
	}
	return out
}
