package gpu

import (
	"math"
	"slices"
	"sync"
	"testing"
)

func weightOf(classes []WeightedClass, c Class) float64 {
	for _, wc := range classes {
		if wc.Class == c {
			return wc.Weight
		}
	}
	return 0
}

func checkNormalised(t *testing.T, classes []WeightedClass) {
	t.Helper()
	sum := 0.0
	for i, c := range classes {
		sum += c.Weight
		if c.Weight <= 0 || math.IsNaN(c.Weight) {
			t.Errorf("class %v has weight %v", c.Class, c.Weight)
		}
		if i > 0 && classes[i-1].Weight < c.Weight {
			t.Errorf("classes not sorted by weight at %d: %v", i, classes)
		}
	}
	if len(classes) > 0 && math.Abs(sum-1) > 1e-9 {
		t.Errorf("weights sum to %v", sum)
	}
}

func TestDistributionHalfLife(t *testing.T) {
	const h = 10
	// Classes of one size, so that only age sets their weights.
	a, b := Class{GPUs: 1, CPUMilli: 1024}, Class{GPUs: 1, CPUMilli: 2048}
	d := NewDistribution(h)
	d.Observe(a)
	for i := 0; i < h; i++ {
		d.Observe(b)
	}
	// a is h observations old: it counts 1/2 of a new one. b's
	// observations are 0..h-1 old.
	wantA := 0.5
	wantB := 0.0
	for age := 0; age < h; age++ {
		wantB += math.Pow(2, -float64(age)/h)
	}
	classes := d.Classes()
	checkNormalised(t, classes)
	if got, want := weightOf(classes, a)/weightOf(classes, b), wantA/wantB; math.Abs(got-want) > 1e-9 {
		t.Errorf("weight ratio a/b = %v, want %v", got, want)
	}

	// Equal counts: the more recent class is heavier.
	d = NewDistribution(h)
	for i := 0; i < 5; i++ {
		d.Observe(a)
	}
	for i := 0; i < 5; i++ {
		d.Observe(b)
	}
	classes = d.Classes()
	if !(weightOf(classes, b) > weightOf(classes, a)) || classes[0].Class != b {
		t.Errorf("recent class not heavier: %v", classes)
	}
}

func TestDistributionNoDecay(t *testing.T) {
	d := NewDistribution(0)
	for i := 0; i < 30; i++ {
		d.Observe(Class{GPUs: 1, CPUMilli: 1})
	}
	for i := 0; i < 10; i++ {
		d.Observe(Class{GPUs: 1, CPUMilli: 2})
	}
	classes := d.Classes()
	checkNormalised(t, classes)
	if w := weightOf(classes, Class{GPUs: 1, CPUMilli: 1}); math.Abs(w-0.75) > 1e-12 {
		t.Errorf("weight %v, want 0.75", w)
	}
}

// TestDistributionWeighsBySize: a class weighs its share of pods times its
// size in GPUs to the power classSizeExponent.
func TestDistributionWeighsBySize(t *testing.T) {
	d := NewDistribution(0)
	counts := map[Class]int{{GPUs: 8}: 1, {GPUs: 1}: 20, {ShareMilli: 250}: 30, {MIGProfile: "1g.10gb"}: 10}
	for c, n := range counts {
		for i := 0; i < n; i++ {
			d.Observe(c)
		}
	}
	size := map[Class]float64{{GPUs: 8}: 8, {GPUs: 1}: 1, {ShareMilli: 250}: 0.25, {MIGProfile: "1g.10gb"}: 0.142} // 1/7 in whole milli-GPUs
	sum := 0.0
	for c, n := range counts {
		sum += float64(n) * math.Pow(size[c], classSizeExponent)
	}
	classes := d.Classes()
	checkNormalised(t, classes)
	for c, n := range counts {
		if got, want := weightOf(classes, c), float64(n)*math.Pow(size[c], classSizeExponent)/sum; math.Abs(got-want) > 1e-12 {
			t.Errorf("class %v weighs %v, want %v", c, got, want)
		}
	}
}

func TestDistributionRenormalises(t *testing.T) {
	// With a half-life of one observation the scale doubles every time and
	// would overflow float64 after ~1000 observations without rescaling.
	d := NewDistribution(1)
	for i := 0; i < 5000; i++ {
		d.Observe(Class{ShareMilli: 100, CPUMilli: 1 + int64(i%3)})
	}
	classes := d.Classes()
	checkNormalised(t, classes)
	// The last three observations, 1+(4999%3)=2 newest, weigh 4:2:1.
	if w := weightOf(classes, Class{ShareMilli: 100, CPUMilli: 2}); math.Abs(w-4.0/7) > 1e-9 {
		t.Errorf("newest class weight %v, want 4/7 (classes %v)", w, classes)
	}
}

func TestDistributionCap(t *testing.T) {
	d := NewDistribution(1000)
	heavy := Class{GPUs: 8}
	for i := 0; i < 100; i++ {
		d.Observe(heavy)
	}
	for i := 1; i <= MaxClasses+20; i++ {
		d.Observe(Class{ShareMilli: i})
	}
	if d.Len() != MaxClasses {
		t.Fatalf("Len() = %d, want %d", d.Len(), MaxClasses)
	}
	classes := d.Classes()
	checkNormalised(t, classes)
	if classes[0].Class != heavy {
		t.Errorf("heaviest class %v, want %v", classes[0].Class, heavy)
	}
	// The newest class is kept; the oldest one-off classes were evicted.
	if weightOf(classes, Class{ShareMilli: MaxClasses + 20}) == 0 {
		t.Errorf("newest class evicted")
	}
	if weightOf(classes, Class{ShareMilli: 1}) != 0 {
		t.Errorf("oldest one-off class kept")
	}
}

func TestClassNormalisation(t *testing.T) {
	tests := []struct {
		in     Class
		want   Class
		wantOK bool
	}{
		{Class{}, Class{}, false},
		{Class{CPUMilli: 1000}, Class{}, false},
		{Class{GPUs: 2, ShareMilli: 300, MIGProfile: "1g.5gb"}, Class{GPUs: 2}, true},
		{Class{ShareMilli: 1000}, Class{GPUs: 1}, true},
		{Class{ShareMilli: 1500}, Class{GPUs: 2}, true},
		{Class{ShareMilli: 300, MIGProfile: "1g.5gb"}, Class{ShareMilli: 300}, true},
		{Class{MIGProfile: "1g.5gb", CPUMilli: -5}, Class{MIGProfile: "1g.5gb"}, true},
		// Four significant bits: 4000 -> 4096, 33000 -> 36864, 15 stays.
		{Class{GPUs: 1, CPUMilli: 4000, MemoryMiB: 33000}, Class{GPUs: 1, CPUMilli: 4096, MemoryMiB: 36864}, true},
		{Class{GPUs: 1, CPUMilli: 15, MemoryMiB: 4096}, Class{GPUs: 1, CPUMilli: 15, MemoryMiB: 4096}, true},
		{Class{ShareMilli: 300, Products: "T4|V100"}, Class{ShareMilli: 300, Products: "T4|V100"}, true},
	}
	for _, tt := range tests {
		got, ok := tt.in.normalize()
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("normalize(%+v) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
	d := NewDistribution(10)
	d.Observe(Class{})
	d.Observe(Class{CPUMilli: 500})
	if d.Len() != 0 || len(d.Classes()) != 0 {
		t.Errorf("classes without GPU demand were stored")
	}
	d.Observe(Class{GPUs: 1, CPUMilli: 4000})
	d.Observe(Class{GPUs: 1, CPUMilli: 4090})
	if d.Len() != 1 {
		t.Errorf("nearly equal CPU requests made %d classes", d.Len())
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		r      Request
		want   Class
		wantOK bool
	}{
		{Request{}, Class{}, false},
		{Request{GPUs: 4, ShareMilli: 100}, Class{GPUs: 4, CPUMilli: 8192}, true},
		{Request{ShareMilli: 100}, Class{ShareMilli: 100, CPUMilli: 8192}, true},
		{Request{MIG: []MIGRequest{{"1g.10gb", 3}, {"3g.40gb", 1}}}, Class{MIGProfile: "3g.40gb", CPUMilli: 8192}, true},
	}
	for _, tt := range tests {
		got, ok := ClassOf(tt.r, 8192, 0)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ClassOf(%+v) = %+v, %v", tt.r, got, ok)
		}
	}
}

func TestClassString(t *testing.T) {
	tests := []struct {
		c    Class
		want string
	}{
		{Class{GPUs: 2}, "2gpu"},
		{Class{ShareMilli: 250, CPUMilli: 4000}, "250m cpu=4000m"},
		{Class{MIGProfile: "3g.40gb", MemoryMiB: 1024}, "mig-3g.40gb mem=1024Mi"},
		{Class{GPUs: 1, Products: "A100|H100"}, "1gpu on=A100|H100"},
		{Class{}, "none"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestDistributionOrderIsDeterministic(t *testing.T) {
	// Equal weights are ordered by class: CPU, memory, products.
	d := NewDistribution(0)
	for _, c := range []Class{{GPUs: 1, CPUMilli: 64}, {GPUs: 1, MemoryMiB: 8}, {GPUs: 1, Products: "T4"}, {GPUs: 1}} {
		d.Observe(c)
	}
	want := []Class{{GPUs: 1}, {GPUs: 1, Products: "T4"}, {GPUs: 1, MemoryMiB: 8}, {GPUs: 1, CPUMilli: 64}}
	got := d.Classes()
	for i := range want {
		if got[i].Class != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
	// The canonical order: whole GPUs, shares, MIG, each by size.
	classes := []Class{{MIGProfile: "1g.5gb"}, {ShareMilli: 200}, {GPUs: 2}, {ShareMilli: 100}, {GPUs: 1}, {GPUs: 1, CPUMilli: 64}}
	slices.SortFunc(classes, compareClasses)
	want = []Class{{GPUs: 1}, {GPUs: 1, CPUMilli: 64}, {GPUs: 2}, {ShareMilli: 100}, {ShareMilli: 200}, {MIGProfile: "1g.5gb"}}
	if !slices.Equal(classes, want) {
		t.Errorf("canonical order %v, want %v", classes, want)
	}
}

func TestDistributionSnapshot(t *testing.T) {
	d := NewDistribution(100)
	d.Observe(Class{GPUs: 1})
	snap := d.Snapshot()
	d.Observe(Class{ShareMilli: 10})
	if len(snap.Classes()) != 1 || snap.Observations() != 1 || snap.Classes()[0].Weight != 1 {
		t.Errorf("snapshot changed: %v, %d", snap.Classes(), snap.Observations())
	}
	if got := d.Snapshot(); len(got.Classes()) != 2 || got.Observations() != 2 {
		t.Errorf("new snapshot %v", got.Classes())
	}
}

// TestDistributionStoredOrder: Stored keeps its order, and Version its
// value, while only weights change, so per-class caches indexed by it stay
// valid; Slot maps the weight-ordered classes onto it.
func TestDistributionStoredOrder(t *testing.T) {
	d := NewDistribution(0)
	for range 3 {
		d.Observe(Class{ShareMilli: 500})
	}
	d.Observe(Class{GPUs: 1})
	before := d.Snapshot()
	for range 5 {
		d.Observe(Class{GPUs: 1}) // now the heaviest: Classes reorders
	}
	after := d.Snapshot()
	if after.Version() != before.Version() || !slices.Equal(after.Stored(), before.Stored()) {
		t.Errorf("weights alone changed the storage: version %d -> %d, %v -> %v", before.Version(), after.Version(), before.Stored(), after.Stored())
	}
	if after.Classes()[0].Class == before.Classes()[0].Class {
		t.Fatalf("premise: the weight order should have changed: %v", after.Classes())
	}
	for _, snap := range []DistributionSnapshot{before, after} {
		for i, c := range snap.Classes() {
			if got := snap.Stored()[snap.Slot(i)]; got != c.Class {
				t.Errorf("Slot(%d) points at %v, want %v", i, got, c.Class)
			}
		}
	}
	d.Observe(Class{ShareMilli: 250})
	if d.Snapshot().Version() == after.Version() {
		t.Errorf("a new class did not change the version")
	}
	full := NewDistribution(0)
	for i := range MaxClasses {
		full.Observe(Class{ShareMilli: 1 + i})
	}
	v := full.Snapshot().Version()
	full.Observe(Class{ShareMilli: 999}) // evicts one
	if full.Snapshot().Version() == v {
		t.Errorf("an eviction did not change the version")
	}
}

func TestDistributionConcurrent(t *testing.T) {
	d := NewDistribution(50)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				// More distinct classes than the cap, so eviction runs concurrently.
				d.Observe(Class{ShareMilli: 1 + (g*500+i)%(MaxClasses+36)})
				if i%50 == 0 {
					checkNormalised(t, d.Snapshot().Classes())
				}
			}
		}()
	}
	wg.Wait()
	if snap := d.Snapshot(); snap.Observations() != 2000 || d.Len() != MaxClasses {
		t.Errorf("after concurrent use: %d observations, %d classes", snap.Observations(), d.Len())
	}
}

func TestProductSet(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{}, ""},
		{[]string{""}, ""},
		{[]string{"T4"}, "T4"},
		{[]string{"V100", "T4", "V100", ""}, "T4|V100"},
	}
	for _, tt := range tests {
		if got := ProductSet(tt.in); got != tt.want {
			t.Errorf("ProductSet(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	c := Class{GPUs: 1, Products: ProductSet([]string{"V100", "T4"})}
	for product, want := range map[string]bool{"T4": true, "V100": true, "V10": false, "": false, "T4|V100": false} {
		if got := c.allows(product); got != want {
			t.Errorf("class on %q allows %q = %v, want %v", c.Products, product, got, want)
		}
	}
	if !(&Class{GPUs: 1}).allows("anything") {
		t.Errorf("a class without products must allow every product")
	}
}
