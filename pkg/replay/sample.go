package replay

import "math/rand"

// Sample draws pods from the trace with replacement until their total GPU
// request reaches inflate x capacity (milli-GPUs), then shuffles them, both
// with the seed: the workload generation of the FGD paper. CPU-only pods are
// drawn in their trace proportion and add nothing to the GPU total.
func Sample(pods []PodRow, capacityMilli int64, inflate float64, seed int64) []PodRow {
	rng := rand.New(rand.NewSource(seed))
	target := int64(inflate * float64(capacityMilli))
	var out []PodRow
	var total int64
	gpuPods := 0
	for _, p := range pods {
		if p.GPURequestMilli() > 0 {
			gpuPods++
		}
	}
	if gpuPods == 0 {
		return nil
	}
	for total < target {
		p := pods[rng.Intn(len(pods))]
		out = append(out, p)
		total += p.GPURequestMilli()
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
