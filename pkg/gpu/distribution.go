package gpu

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Class is the shape of one pod's demand, the unit in which the scheduler
// learns what the workload looks like. Exactly one GPU part is set: whole
// GPUs, a share of one GPU, or one MIG instance. CPU and memory are optional
// (0 means the class does not care) and let fragmentation see GPUs stranded
// because their node has no CPU or memory left. Products optionally limits
// the class to nodes of some GPU models, so that fragmentation sees which
// capacity such pods can reach at all.
type Class struct {
	GPUs       int
	ShareMilli int
	MIGProfile string
	CPUMilli   int64
	MemoryMiB  int64
	// Products lists the GPU products (values of the node label
	// LabelProduct) the class may run on, as ProductSet writes them; empty
	// means any node. A string, not a slice, so that a Class stays
	// comparable and can key a map.
	Products string
}

// ProductSet is the canonical form of a list of GPU products for
// Class.Products: sorted, without duplicates or empty names, joined by "|".
func ProductSet(products []string) string {
	ps := slices.DeleteFunc(slices.Clone(products), func(p string) bool { return p == "" })
	slices.Sort(ps)
	return strings.Join(slices.Compact(ps), "|")
}

// allows reports whether a node whose GPU product is product may host the
// class.
func (c *Class) allows(product string) bool {
	if c.Products == "" {
		return true
	}
	for rest := c.Products; rest != ""; {
		var p string
		p, rest, _ = strings.Cut(rest, "|")
		if p == product {
			return true
		}
	}
	return false
}

// ClassOf reduces a request to the class it is counted as: whole GPUs if it
// has any, else its share, else its largest MIG profile. ok is false for a
// request without GPU demand. Multi-part requests are rare; counting them by
// their dominant part keeps the number of classes small.
func ClassOf(r Request, cpuMilli, memoryMiB int64) (Class, bool) {
	c := Class{GPUs: r.GPUs, ShareMilli: r.ShareMilli, CPUMilli: cpuMilli, MemoryMiB: memoryMiB}
	if units := r.migUnits(); len(units) > 0 {
		c.MIGProfile = units[0]
	}
	return c.normalize()
}

// normalize returns the canonical form of c: one GPU part (whole GPUs over a
// share over MIG; a share of 1000 or more becomes whole GPUs; MIG profiles
// in lower case), CPU and memory rounded up to four significant bits so
// that pods of almost equal size fall into one class (at most 12.5% more
// than asked), and Products as given (see ProductSet). ok is false for a
// class with no GPU demand.
func (c Class) normalize() (Class, bool) {
	out := Class{CPUMilli: roundUpSignificant(c.CPUMilli), MemoryMiB: roundUpSignificant(c.MemoryMiB), Products: c.Products}
	switch {
	case c.GPUs > 0:
		out.GPUs = c.GPUs
	case c.ShareMilli >= 1000:
		out.GPUs = (c.ShareMilli + 999) / 1000
	case c.ShareMilli > 0:
		out.ShareMilli = c.ShareMilli
	case c.MIGProfile != "":
		out.MIGProfile = strings.ToLower(c.MIGProfile)
	default:
		return Class{}, false
	}
	return out, true
}

// roundUpSignificant rounds v up to a number with at most four significant
// binary digits; values <= 0 become 0.
func roundUpSignificant(v int64) int64 {
	if v <= 0 {
		return 0
	}
	shift := bits.Len64(uint64(v)) - 4
	if shift <= 0 {
		return v
	}
	unit := int64(1) << shift
	return (v + unit - 1) / unit * unit
}

// String describes the class compactly, for logs and the playground:
// "2gpu", "250m", "mig-3g.40gb", with " cpu=4000m mem=16384Mi" when set.
func (c Class) String() string {
	var s string
	switch {
	case c.GPUs > 0:
		s = strconv.Itoa(c.GPUs) + "gpu"
	case c.ShareMilli > 0:
		s = strconv.Itoa(c.ShareMilli) + "m"
	case c.MIGProfile != "":
		s = "mig-" + c.MIGProfile
	default:
		s = "none"
	}
	if c.CPUMilli > 0 {
		s += " cpu=" + strconv.FormatInt(c.CPUMilli, 10) + "m"
	}
	if c.MemoryMiB > 0 {
		s += " mem=" + strconv.FormatInt(c.MemoryMiB, 10) + "Mi"
	}
	if c.Products != "" {
		s += " on=" + c.Products
	}
	return s
}

// compareClasses orders classes canonically: whole GPUs, then shares, then
// MIG, each by size, then by CPU and memory.
func compareClasses(a, b Class) int {
	kind := func(c Class) int {
		switch {
		case c.GPUs > 0:
			return 0
		case c.ShareMilli > 0:
			return 1
		}
		return 2
	}
	return cmp.Or(
		cmp.Compare(kind(a), kind(b)),
		cmp.Compare(a.GPUs, b.GPUs),
		cmp.Compare(a.ShareMilli, b.ShareMilli),
		cmp.Compare(a.MIGProfile, b.MIGProfile),
		cmp.Compare(a.CPUMilli, b.CPUMilli),
		cmp.Compare(a.MemoryMiB, b.MemoryMiB),
		cmp.Compare(a.Products, b.Products),
	)
}

// sizeGPUs is the class's GPU request in GPUs: whole GPUs, a fraction for a
// share or a MIG instance (its compute slices out of seven).
func (c *Class) sizeGPUs() float64 {
	r := Request{GPUs: c.GPUs, ShareMilli: c.ShareMilli}
	if c.MIGProfile != "" {
		r.MIG = []MIGRequest{{Profile: c.MIGProfile, Count: 1}}
	}
	if m := r.GPUEquivalentMilli(); m > 0 {
		return float64(m) / 1000
	}
	// A MIG profile whose name says nothing of its size.
	return 1
}

// WeightedClass is a class with its share of the recent workload.
type WeightedClass struct {
	Class
	Weight float64
}

// classSizeExponent is the power of a class's size in GPUs its weight is
// multiplied by (see Distribution.Classes): between FGD's share of pods (0)
// and share of GPU demand (1), and nearer the former, because small shares
// must still fill the holes beside other shares while big requests are
// protected. Chosen by replaying the openb trace; the measurements are in
// docs/benchmarks.md ("Where the scoring constants come from").
const classSizeExponent = 0.25

// MaxClasses is the most distinct classes a Distribution keeps. Scoring cost
// grows with it, but dropping classes loses demand the scorer should protect:
// a production trace has about a hundred classes after rounding, several
// hundred when classes also differ by the GPU products they may use
// (measurements in docs/benchmarks.md, "Where the scoring constants come
// from"). A workload with fewer classes pays nothing for it.
const MaxClasses = 256

// Distribution learns online how often each demand class occurs in the
// recent workload, the input FGD needs to judge fragmentation. Old
// observations fade exponentially: after halfLife further observations one
// counts half as much. It is safe for concurrent use.
//
// Decay costs O(1) per observation: instead of shrinking every weight, each
// new observation is added with a weight that grows by 2^(1/halfLife); the
// stored weights are rescaled only when that factor gets large. When
// MaxClasses distinct classes are stored, a new class replaces the lightest
// one, which is the least relevant to current scheduling.
type Distribution struct {
	mu       sync.Mutex
	growth   float64 // per-observation growth of the scale
	scale    float64 // weight of the next observation
	index    map[Class]int
	entries  []distEntry
	observed int64
	// version changes whenever a class is added, removed or moved in
	// entries, so that a snapshot's storage order can key caches.
	version uint64
}

type distEntry struct {
	class Class
	raw   float64 // weight in units of the current scale
}

// renormalizeAt is the scale beyond which stored weights are rescaled, well
// before float64 overflows.
const renormalizeAt = 1e100

// NewDistribution returns an empty distribution whose observations lose half
// their weight after halfLife further observations; halfLife <= 0 means no
// decay.
func NewDistribution(halfLife int) *Distribution {
	growth := 1.0
	if halfLife > 0 {
		growth = math.Exp2(1 / float64(halfLife))
	}
	return &Distribution{growth: growth, scale: 1, index: map[Class]int{}}
}

// Observe counts one pod with demand c. Classes without GPU demand are
// ignored; c is normalised first (see ClassOf).
func (d *Distribution) Observe(c Class) {
	c, ok := c.normalize()
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.observed++
	if d.observed > 1 {
		d.scale *= d.growth
	}
	if d.scale > renormalizeAt {
		d.renormalize()
	}
	if i, ok := d.index[c]; ok {
		d.entries[i].raw += d.scale
		return
	}
	if len(d.entries) >= MaxClasses {
		d.evictLightest()
	}
	d.version++
	d.index[c] = len(d.entries)
	d.entries = append(d.entries, distEntry{class: c, raw: d.scale})
}

// renormalize divides every weight by the scale, dropping classes whose
// weight became negligible.
func (d *Distribution) renormalize() {
	kept := d.entries[:0]
	for _, e := range d.entries {
		e.raw /= d.scale
		if e.raw > 1e-200 {
			kept = append(kept, e)
		}
	}
	if len(kept) < len(d.entries) {
		d.version++
	}
	clear(d.entries[len(kept):])
	d.entries = kept
	d.scale = 1
	d.reindex()
}

// evictLightest removes the class with the smallest weight; among equal
// weights the one last in canonical order, so eviction is deterministic.
func (d *Distribution) evictLightest() {
	victim := 0
	for i := 1; i < len(d.entries); i++ {
		e, v := &d.entries[i], &d.entries[victim]
		if e.raw < v.raw || e.raw == v.raw && compareClasses(e.class, v.class) > 0 {
			victim = i
		}
	}
	delete(d.index, d.entries[victim].class)
	last := len(d.entries) - 1
	if victim != last {
		d.entries[victim] = d.entries[last]
		d.index[d.entries[victim].class] = victim
	}
	d.entries[last] = distEntry{}
	d.entries = d.entries[:last]
}

func (d *Distribution) reindex() {
	clear(d.index)
	for i, e := range d.entries {
		d.index[e.class] = i
	}
}

// Len is the number of distinct classes stored.
func (d *Distribution) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// Classes returns the stored classes with weights that sum to 1, heaviest
// first and ties in canonical class order, in a new slice. It is empty until
// something is observed.
//
// A class weighs its share of the recent pods times its size in GPUs to the
// power classSizeExponent. FGD weighs classes by their share of pods alone,
// so the rare 8-GPU pods, which bring a large part of the GPU demand, hardly
// count when a scorer decides whether to break up an empty node; weighing by
// GPU demand alone lets them crowd out the small shares that fill fragments.
// See classSizeExponent for how the power was chosen.
func (d *Distribution) Classes() []WeightedClass {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.classesLocked()
}

func (d *Distribution) classesLocked() []WeightedClass {
	total := 0.0
	for _, e := range d.entries {
		total += e.raw
	}
	out := make([]WeightedClass, 0, len(d.entries))
	if total <= 0 {
		return out
	}
	weighted := 0.0
	for _, e := range d.entries {
		w := e.raw / total * math.Pow(e.class.sizeGPUs(), classSizeExponent)
		weighted += w
		out = append(out, WeightedClass{Class: e.class, Weight: w})
	}
	for i := range out {
		out[i].Weight /= weighted
	}
	slices.SortFunc(out, func(a, b WeightedClass) int {
		return cmp.Or(cmp.Compare(b.Weight, a.Weight), compareClasses(a.Class, b.Class))
	})
	return out
}

// Snapshot freezes the distribution for one scheduling cycle, so that every
// node is scored against the same classes however many pods are observed
// meanwhile.
func (d *Distribution) Snapshot() DistributionSnapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	snap := DistributionSnapshot{classes: d.classesLocked(), observed: d.observed, version: d.version}
	snap.stored = make([]Class, len(d.entries))
	for i, e := range d.entries {
		snap.stored[i] = e.class
	}
	snap.slots = make([]int, len(snap.classes))
	for i, c := range snap.classes {
		snap.slots[i] = d.index[c.Class]
	}
	return snap
}

// DistributionSnapshot is an immutable view of a Distribution.
type DistributionSnapshot struct {
	classes  []WeightedClass
	stored   []Class
	slots    []int
	version  uint64
	observed int64
}

// Classes returns the snapshot's classes as Distribution.Classes orders
// them. The slice is shared by every user of the snapshot, so that scoring
// does not copy it: callers must not modify it.
func (s DistributionSnapshot) Classes() []WeightedClass {
	return s.classes
}

// Observations is the number of observations the distribution had counted.
func (s DistributionSnapshot) Observations() int64 {
	return s.observed
}

// Stored returns the snapshot's classes in the order the distribution
// stores them. Unlike Classes, whose order follows the weights, this order
// changes only when Version does, so per-class values derived from a node
// (see NodeState.Reach) can be cached in it across scheduling cycles. The
// slice is shared: callers must not modify it.
func (s DistributionSnapshot) Stored() []Class {
	return s.stored
}

// Slot is the position in Stored of the i-th class of Classes.
func (s DistributionSnapshot) Slot(i int) int {
	return s.slots[i]
}

// Version identifies the set and storage order of the classes: two
// snapshots of one Distribution with the same Version have the same Stored.
func (s DistributionSnapshot) Version() uint64 {
	return s.version
}
