package replay

import (
	"math/rand"
	"slices"
	"strings"
)

// Sample generates one seed's workload exactly as the FGD paper's simulator
// (hkust-adsl/kubernetes-scheduler-simulator, "workload tuning" with ratio
// inflate and shufflePod) does, so that a seed here replays the same pod
// sequence as the paper's run with that seed and results compare seed by
// seed with its published ones:
//
//  1. the trace's pods, sorted by name, are shuffled (math/rand seeded with
//     the seed; the simulator draws one number in a log line first);
//  2. while their GPU request is below inflate x capacity (milli-GPUs), pods
//     drawn with replacement from the name-sorted trace are appended, after
//     the shuffled ones and not shuffled with them; the draw that would pass
//     the target ends it and is not kept (the simulator compares one GPU's
//     milli with the remaining room, so a multi-GPU pod can still overshoot);
//  3. if the trace alone is above the target, pods drawn at random are
//     removed until it is not.
//
// CPU-only pods stay in their trace proportion and add nothing to the GPU
// total. TestSampleMatchesArtifact checks the sequence against the curves
// the paper's artifact publishes.
func Sample(pods []PodRow, capacityMilli int64, inflate float64, seed int64) []PodRow {
	if !slices.ContainsFunc(pods, func(p PodRow) bool { return p.GPURequestMilli() > 0 }) {
		return nil
	}
	sorted := slices.Clone(pods)
	slices.SortStableFunc(sorted, func(a, b PodRow) int { return strings.Compare(a.Name, b.Name) })
	rng := rand.New(rand.NewSource(seed))
	rng.Int()
	out := slices.Clone(sorted)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })

	var total int64
	for _, p := range out {
		total += p.GPURequestMilli()
	}
	target := inflate * float64(capacityMilli)
	switch {
	case float64(total) < target:
		for {
			p := sorted[rng.Intn(len(sorted))]
			if float64(total+int64(p.GPUMilli)) > target {
				break
			}
			total += p.GPURequestMilli()
			out = append(out, p)
		}
	case float64(total) > target:
		for float64(total) > target && len(out) > 0 {
			i := rng.Intn(len(out))
			total -= out[i].GPURequestMilli()
			out = slices.Delete(out, i, i+1)
		}
	}
	return out
}
