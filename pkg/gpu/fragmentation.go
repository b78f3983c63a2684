package gpu

import "sync"

// NonGPU is what besides its GPUs decides whether a class can run on a node
// at all: its free CPU and memory (a negative value means unknown and is not
// checked) and its GPU product, the value of its LabelProduct label, for
// classes limited to some GPU models.
type NonGPU struct {
	CPUMilli  int64
	MemoryMiB int64
	Product   string
}

// Fragmentation is the expected free GPU capacity, in milli-GPUs, that a pod
// drawn from classes could not use on this node: the fragmentation measure
// of FGD (Weng et al., "Beware of Fragmentation", USENIX ATC '23), extended
// to count the CPU and memory that must go with the GPUs. free is the
// node's free CPU and memory.
//
// For each class, if the node cannot host it at all (too few free whole
// GPUs, no GPU with room for the share, no slot for the MIG profile, too
// little CPU or memory, or a GPU product the class may not use), all free
// GPU capacity counts as fragmented.
// Otherwise the fragmented part is the free capacity on GPUs that cannot
// serve the class by themselves: for a share of m milli the GPUs with less
// than m free, for whole GPUs the GPUs that are partly used, for a MIG
// profile the GPUs on which it no longer fits, and always the GPUs of the
// other kind (MIG GPUs for whole GPUs and shares, MIG-disabled GPUs for MIG).
// The result is the sum over classes of weight times fragmented capacity.
//
// Unlike FGD, a class may also be short of CPU or memory for more than one
// pod: when the node's free CPU or memory holds only k pods of the class,
// only the GPUs those k pods could take (k times the class's GPUs; the ones
// with the most free capacity) count as usable, and the rest of the GPUs
// that could serve it as fragmented. FGD asks only whether one more pod
// fits, so it sees nothing wrong in a node with four free GPUs and the CPU
// for one more pod, and fills such nodes' CPU with pods that could have run
// elsewhere, leaving whole GPUs idle on nodes without CPU (measured in
// docs/benchmarks.md, "CPU and memory for every pod").
//
// It is on the scheduler's hot path, called for every feasible node and
// every pod, and does not allocate on nodes of up to 16 GPUs.
func (s *NodeState) Fragmentation(free NonGPU, classes []WeightedClass) float64 {
	// Per-GPU free capacity, computed once; on the stack for usual nodes.
	var buf [16]int64
	freeMilli, total := s.freePerGPU(buf[:0])
	if total == 0 {
		return 0
	}
	f := 0.0
	for i := range classes {
		c := &classes[i]
		if c.Weight == 0 {
			continue
		}
		f += c.Weight * float64(s.classFragmentation(free, &c.Class, freeMilli, total))
	}
	return f
}

// freePerGPU appends each GPU's free capacity to buf (a stack buffer for
// usual nodes; it grows for bigger ones) and returns it with the sum.
func (s *NodeState) freePerGPU(buf []int64) ([]int64, int64) {
	var total int64
	for pos := range s.gpus {
		m := s.freeMilli(pos)
		buf = append(buf, m)
		total += m
	}
	return buf, total
}

// classFragmentation is the free capacity class c could not use; freeMilli
// holds each GPU's free capacity and total their sum, and the GPUs a class's
// pods cannot take for want of CPU or memory count as unusable (see
// Fragmentation).
func (s *NodeState) classFragmentation(free NonGPU, c *Class, freeMilli []int64, total int64) int64 {
	if !c.allows(free.Product) {
		return total
	}
	perPod := max(c.GPUs, 1)
	take := free.takeable(c, perPod, len(freeMilli))
	if take == 0 {
		return total
	}
	// usable collects the free capacity of the GPUs that could serve the
	// class, when its pods can take only some of them.
	var buf [16]int64
	usable := buf[:0]
	var frag int64
	serving := 0
	switch {
	case c.GPUs > 0:
		for pos, m := range freeMilli {
			if s.freeWhole(pos) {
				serving++
				if take > 0 {
					usable = append(usable, m)
				}
			} else {
				frag += m
			}
		}
	case c.ShareMilli > 0:
		for pos, m := range freeMilli {
			if m >= int64(c.ShareMilli) && s.info.gpus[pos].mode == MIGDisabled {
				serving++
				if take > 0 {
					usable = append(usable, m)
				}
			} else {
				frag += m
			}
		}
	case c.MIGProfile != "":
		for pos, m := range freeMilli {
			if s.migFits(pos, c.MIGProfile) {
				serving++
				if take > 0 {
					usable = append(usable, m)
				}
			} else {
				frag += m
			}
		}
	}
	if serving < perPod {
		return total
	}
	if take > 0 && take < serving {
		frag += sumSmallest(usable, serving-take)
	}
	return frag
}

// takeable is how many GPUs of a node of n GPUs the pods of class c (of
// perPod GPUs each) that its free CPU and memory hold could take: -1 when
// CPU and memory suffice for pods on all n, else a multiple of perPod below
// n (0 when not one pod fits). Divisions only where CPU or memory is short:
// this runs for every class, node and pod.
func (free NonGPU) takeable(c *Class, perPod, n int) int {
	all := int64((n + perPod - 1) / perPod) // pods that would take every GPU
	pods := int64(-1)
	if free.CPUMilli >= 0 && c.CPUMilli > 0 && free.CPUMilli < c.CPUMilli*all {
		pods = free.CPUMilli / c.CPUMilli
	}
	if free.MemoryMiB >= 0 && c.MemoryMiB > 0 && free.MemoryMiB < c.MemoryMiB*all {
		if k := free.MemoryMiB / c.MemoryMiB; pods < 0 || k < pods {
			pods = k
		}
	}
	if pods < 0 {
		return -1
	}
	return int(pods) * perPod
}

// sumSmallest returns the sum of the n smallest values of v, which it
// reorders. v is a node's GPUs, so a quadratic sort is the cheapest.
func sumSmallest(v []int64, n int) int64 {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
	var sum int64
	for _, x := range v[:n] {
		sum += x
	}
	return sum
}

// Reach writes into out, for each of classes, the node's free GPU capacity
// the class could use: the free capacity minus the class's fragmentation
// (see Fragmentation), 0 where the node cannot host the class at all. free
// is the node's free CPU and memory. Summed over a cluster's nodes it tells
// how much room each class still has (see WeighByScarcity). out is reused
// when it has the capacity.
func (s *NodeState) Reach(free NonGPU, classes []Class, out []int64) []int64 {
	var buf [16]int64
	freeMilli, total := s.freePerGPU(buf[:0])
	out = out[:0]
	for i := range classes {
		r := int64(0)
		if total > 0 {
			r = total - s.classFragmentation(free, &classes[i], freeMilli, total)
		}
		out = append(out, r)
	}
	return out
}

// migFits reports whether one more instance of profile could be held on the
// GPU at pos: a free existing instance, or room to create one on a
// MIG-dynamic GPU.
func (s *NodeState) migFits(pos int, profile string) bool {
	gi, st := &s.info.gpus[pos], &s.gpus[pos]
	if gi.mode == MIGDisabled {
		return false
	}
	for i := range gi.instances {
		if st.held&(1<<i) == 0 && sameProfile(gi.instances[i].profile.Name, profile) {
			return true
		}
	}
	if gi.mode != MIGDynamic {
		return false
	}
	pi := gi.product.profileIndex(profile)
	return pi >= 0 && canCreate(&gi.product.MIGProfiles[pi], st)
}

// scratchStates recycles the working copies FragmentationDelta needs, so
// that scoring does not allocate.
var scratchStates = sync.Pool{New: func() any { return new(NodeState) }}

// FragmentationDelta is how much placing a on s would change its
// fragmentation: Fragmentation after (with after the free CPU and memory
// left once the pod runs) minus Fragmentation before (with free). This is the
// FGD score: among feasible nodes and assignments a scheduler prefers the
// smallest increase. s is not changed. The error is Add's, when a does not
// fit s.
func FragmentationDelta(s *NodeState, a Assignment, free, after NonGPU, classes []WeightedClass) (float64, error) {
	before := s.Fragmentation(free, classes)
	w := scratchStates.Get().(*NodeState)
	w.info = s.info
	w.gpus = append(w.gpus[:0], s.gpus...)
	err := w.apply(a)
	delta := 0.0
	if err == nil {
		delta = w.Fragmentation(after, classes) - before
	}
	w.info = nil
	scratchStates.Put(w)
	return delta, err
}
