package replay

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
)

// Options configure Run.
type Options struct {
	Nodes   []NodeRow
	Pods    []PodRow
	Seeds   []int64
	Inflate float64
	Profile Profile
	// MaxPods, when positive, stops each seed after that many pods (for
	// quick runs and tests); the paper's method has no such limit.
	MaxPods int
	// Progress, if set, is called after every pod of a seed with the number
	// done and the total.
	Progress func(seed int64, done, total int)
}

// Point is one point of the allocation curve, in percent of the cluster's
// GPU capacity.
type Point struct {
	Arrived   int     `json:"arrived"`
	Allocated float64 `json:"allocated"`
}

// SeedResult is one seed's replay.
type SeedResult struct {
	Seed      int64 `json:"seed"`
	Pods      int   `json:"pods"`
	Scheduled int   `json:"scheduled"`
	Dropped   int   `json:"dropped"`
	// AllocAt100 is the mean allocation ratio (percent) over the arrivals
	// whose arrived ratio rounds to 100 %. On clusters so small that one pod
	// moves arrived by more than a point, the 100 % bucket can be skipped;
	// it is then interpolated between its neighbours on the curve.
	AllocAt100 float64       `json:"gpu_alloc_ratio_at_100"`
	Curve      []Point       `json:"curve"`
	Duration   time.Duration `json:"duration_ns"`
	// AtFull says where the unallocated capacity is when arrived first
	// reaches 100 %.
	AtFull *Breakdown `json:"at_100,omitempty"`
}

// Result is a whole replay: one profile over several seeds.
type Result struct {
	Profile       Profile      `json:"profile"`
	Nodes         int          `json:"nodes"`
	GPUs          int          `json:"gpus"`
	Inflate       float64      `json:"inflate"`
	AllocAt100    float64      `json:"gpu_alloc_ratio_at_100"`
	PerSeed       []float64    `json:"per_seed"`
	Curve         []Point      `json:"curve"`
	Seeds         []SeedResult `json:"seeds"`
	TotalDuration float64      `json:"total_seconds"`
}

// Run replays the trace once per seed with the paper's method: sample to
// Inflate x GPU capacity, shuffle, schedule one pod at a time, drop what
// does not fit, never delete. After each pod it records arrived (GPU
// requested so far / capacity) and allocated (GPU placed / capacity); the
// value at arrived = N % is the mean allocated over arrivals whose arrived
// rounds to N, as in the paper's analysis.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Inflate <= 0 {
		return nil, fmt.Errorf("inflate must be positive, got %v", o.Inflate)
	}
	res := &Result{Profile: o.Profile, Nodes: len(o.Nodes), Inflate: o.Inflate}
	for _, n := range o.Nodes {
		res.GPUs += n.GPUs
	}
	if res.GPUs == 0 {
		return nil, fmt.Errorf("the node list has no GPUs")
	}
	capacity := int64(res.GPUs) * 1000
	start := time.Now()
	typical := typicalOneGPU(o.Pods)
	for _, seed := range o.Seeds {
		sr, err := runSeed(ctx, o, seed, capacity, typical)
		if err != nil {
			return nil, fmt.Errorf("seed %d: %w", seed, err)
		}
		res.Seeds = append(res.Seeds, *sr)
		res.PerSeed = append(res.PerSeed, sr.AllocAt100)
	}
	res.TotalDuration = time.Since(start).Seconds()
	res.AllocAt100 = Mean(res.PerSeed)
	res.Curve = meanCurve(res.Seeds)
	return res, nil
}

// runSeed replays one seed; typical is the trace's median one-GPU pod, for
// the breakdown (nil when it has none).
func runSeed(ctx context.Context, o Options, seed int64, capacity int64, typical *PodRow) (*SeedResult, error) {
	start := time.Now()
	// The plugins run goroutines until their context ends (GPUPlacement's
	// metrics, for one); ending it with the seed lets the seed's framework
	// and node state go, instead of keeping ~200 MiB per seed replayed.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nodes := make([]*v1.Node, 0, len(o.Nodes))
	for _, n := range o.Nodes {
		nodes = append(nodes, n.Node())
	}
	sim, err := NewSimulator(ctx, o.Profile, nodes, seed)
	if err != nil {
		return nil, err
	}
	if testHookSimulator != nil {
		testHookSimulator(sim)
	}
	pods := Sample(o.Pods, capacity, o.Inflate, seed)
	if o.MaxPods > 0 && len(pods) > o.MaxPods {
		pods = pods[:o.MaxPods]
	}
	sr := &SeedResult{Seed: seed, Pods: len(pods)}
	sums, counts := map[int]float64{}, map[int]int{}
	var arrived, allocated int64
	dropped := map[string]dropCount{}
	for i, p := range pods {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		node, err := sim.Schedule(ctx, p.Pod(fmt.Sprintf("%s-%d", p.Name, i)))
		if err != nil {
			return nil, fmt.Errorf("pod %d (%s): %w", i, p.Name, err)
		}
		arrived += p.GPURequestMilli()
		if node == "" {
			sr.Dropped++
			kind := podKind(p)
			d := dropped[kind]
			dropped[kind] = dropCount{pods: d.pods + 1, milli: d.milli + p.GPURequestMilli()}
		} else {
			sr.Scheduled++
			allocated += p.GPURequestMilli()
		}
		if sr.AtFull == nil && (arrived >= capacity || i == len(pods)-1) {
			b := breakdown(sim.NodeInfos(), capacity, arrived, allocated, dropped, typical)
			sr.AtFull = &b
		}
		a := int(math.RoundToEven(float64(arrived) * 100 / float64(capacity)))
		sums[a] += float64(allocated) * 100 / float64(capacity)
		counts[a]++
		if o.Progress != nil {
			o.Progress(seed, i+1, len(pods))
		}
	}
	for a, c := range counts {
		sr.Curve = append(sr.Curve, Point{Arrived: a, Allocated: sums[a] / float64(c)})
	}
	sort.Slice(sr.Curve, func(i, j int) bool { return sr.Curve[i].Arrived < sr.Curve[j].Arrived })
	sr.AllocAt100 = at(sr.Curve, 100)
	sr.Duration = time.Since(start)
	return sr, nil
}

// testHookSimulator lets tests inspect the last seed's simulator.
var testHookSimulator func(*Simulator)

// at is the curve's value at arrived = x, interpolated linearly between
// the nearest points when x itself is missing (the curve's last value when
// it never reaches x).
func at(curve []Point, x int) float64 {
	if len(curve) == 0 {
		return 0
	}
	i := sort.Search(len(curve), func(i int) bool { return curve[i].Arrived >= x })
	switch {
	case i == len(curve):
		return curve[len(curve)-1].Allocated
	case curve[i].Arrived == x || i == 0:
		return curve[i].Allocated
	}
	lo, hi := curve[i-1], curve[i]
	f := float64(x-lo.Arrived) / float64(hi.Arrived-lo.Arrived)
	return lo.Allocated + f*(hi.Allocated-lo.Allocated)
}

// Mean is the arithmetic mean of xs, 0 for none: the per-seed average the
// replay reports.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// meanCurve averages the seeds' curves point by point.
func meanCurve(seeds []SeedResult) []Point {
	sums, counts := map[int]float64{}, map[int]int{}
	for _, s := range seeds {
		for _, p := range s.Curve {
			sums[p.Arrived] += p.Allocated
			counts[p.Arrived]++
		}
	}
	out := make([]Point, 0, len(sums))
	for a, s := range sums {
		out = append(out, Point{Arrived: a, Allocated: s / float64(counts[a])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Arrived < out[j].Arrived })
	return out
}
