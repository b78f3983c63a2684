package replay

import (
	"cmp"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/tessera-sched/tessera/pkg/kube"
)

// Breakdown says where the GPU capacity that is not allocated is, at the
// first arrival at which arrived reaches 100 % (at the end of the seed if
// it never does): free space left on partly used GPUs, by its size, and
// whole idle GPUs, with how many of those sit on nodes without the CPU or
// memory of a median one-GPU pod of the trace. Together with the pods
// dropped until then it tells a packing loss (small leftovers nothing fits)
// from a CPU or memory shortage (idle GPUs on full nodes) — the question to
// answer before tuning a placement policy.
type Breakdown struct {
	// Arrived and Allocated are the ratios, in percent of the GPU
	// capacity, at that moment.
	Arrived   float64 `json:"arrived"`
	Allocated float64 `json:"allocated"`
	// PartlyUsedFree is the free capacity on partly used GPUs, in percent
	// of the GPU capacity; Gaps breaks it down by size, the sizes that hold
	// most of it first.
	PartlyUsedFree float64 `json:"free_on_partly_used_gpus"`
	Gaps           []Gap   `json:"gaps,omitempty"`
	// IdleGPUs are the GPUs nothing holds; IdleGPUsStranded those of them
	// on nodes with less free CPU or memory than a median one-GPU pod of
	// the trace asks for (0 when the trace has no one-GPU pods).
	IdleGPUs         int `json:"idle_gpus"`
	IdleGPUsStranded int `json:"idle_gpus_without_cpu_or_memory"`
	// Dropped are the pods dropped until then, by kind.
	Dropped []Dropped `json:"dropped,omitempty"`
}

// Gap is one size of free space on partly used GPUs: GPUs of them had
// exactly FreeMilli milli-GPUs free.
type Gap struct {
	FreeMilli int64 `json:"free_milli"`
	GPUs      int   `json:"gpus"`
}

// Dropped counts the dropped pods of one kind ("share", "1-GPU", "8-GPU",
// "no-GPU") and their GPU request in percent of the GPU capacity.
type Dropped struct {
	Kind string  `json:"kind"`
	Pods int     `json:"pods"`
	GPU  float64 `json:"gpu"`
}

// dropCount is the number of pods of one kind dropped so far and their
// GPU request in milli-GPUs.
type dropCount struct {
	pods  int
	milli int64
}

// podKind names the kind of pod p is, for Dropped.
func podKind(p PodRow) string {
	switch {
	case p.NumGPU == 0 || p.GPUMilli == 0:
		return "no-GPU"
	case p.GPUMilli < 1000:
		return "share"
	}
	return fmt.Sprintf("%d-GPU", p.NumGPU)
}

// typicalOneGPU is a pod with the median CPU and memory request of the
// trace's one-GPU pods, or nil when it has none.
func typicalOneGPU(pods []PodRow) *PodRow {
	var cpus, mems []int64
	for _, p := range pods {
		if p.NumGPU == 1 && p.GPUMilli >= 1000 {
			cpus = append(cpus, p.CPUMilli)
			mems = append(mems, p.MemoryMiB)
		}
	}
	if len(cpus) == 0 {
		return nil
	}
	slices.Sort(cpus)
	slices.Sort(mems)
	return &PodRow{CPUMilli: cpus[len(cpus)/2], MemoryMiB: mems[len(mems)/2]}
}

// breakdown takes the Breakdown of the simulated cluster; dropped holds the
// pods dropped so far by kind, typical the median one-GPU pod (nil for
// none).
func breakdown(nodes []fwk.NodeInfo, capacity, arrived, allocated int64, dropped map[string]dropCount, typical *PodRow) Breakdown {
	pct := func(milli int64) float64 { return float64(milli) * 100 / float64(capacity) }
	b := Breakdown{Arrived: pct(arrived), Allocated: pct(allocated)}
	gaps := map[int64]int{}
	var partlyFree int64
	for _, ni := range nodes {
		pods := make([]*v1.Pod, 0, len(ni.GetPods()))
		for _, pi := range ni.GetPods() {
			pods = append(pods, pi.GetPod())
		}
		s := kube.NodeGPUState(ni.Node(), pods)
		if s == nil {
			continue
		}
		freeCPU := ni.GetAllocatable().GetMilliCPU() - ni.GetRequested().GetMilliCPU()
		freeMiB := (ni.GetAllocatable().GetMemory() - ni.GetRequested().GetMemory()) >> 20
		stranded := typical != nil && (freeCPU < typical.CPUMilli || freeMiB < typical.MemoryMiB)
		for _, g := range s.GPUs() {
			switch {
			case g.FreeMilli == g.CapacityMilli:
				b.IdleGPUs++
				if stranded {
					b.IdleGPUsStranded++
				}
			case g.FreeMilli > 0:
				partlyFree += g.FreeMilli
				gaps[g.FreeMilli]++
			}
		}
	}
	b.PartlyUsedFree = pct(partlyFree)
	for free, n := range gaps {
		b.Gaps = append(b.Gaps, Gap{FreeMilli: free, GPUs: n})
	}
	sortGaps(b.Gaps)
	for kind, v := range dropped {
		b.Dropped = append(b.Dropped, Dropped{Kind: kind, Pods: v.pods, GPU: pct(v.milli)})
	}
	sortDropped(b.Dropped)
	return b
}

// sortGaps orders gaps by the capacity they hold, largest first.
func sortGaps(g []Gap) {
	slices.SortFunc(g, func(x, y Gap) int {
		return cmp.Or(cmp.Compare(y.FreeMilli*int64(y.GPUs), x.FreeMilli*int64(x.GPUs)), cmp.Compare(x.FreeMilli, y.FreeMilli))
	})
}

// sortDropped orders dropped kinds by GPU request, largest first.
func sortDropped(d []Dropped) {
	slices.SortFunc(d, func(x, y Dropped) int {
		return cmp.Or(cmp.Compare(y.GPU, x.GPU), cmp.Compare(x.Kind, y.Kind))
	})
}

// MeanBreakdown averages the seeds' breakdowns (gap and dropped counts per
// size and kind), for a summary over seeds.
func MeanBreakdown(seeds []SeedResult) Breakdown {
	var m Breakdown
	n := 0
	gaps := map[int64]int{}
	dropped := map[string]Dropped{}
	for _, s := range seeds {
		b := s.AtFull
		if b == nil {
			continue
		}
		n++
		m.Arrived += b.Arrived
		m.Allocated += b.Allocated
		m.PartlyUsedFree += b.PartlyUsedFree
		m.IdleGPUs += b.IdleGPUs
		m.IdleGPUsStranded += b.IdleGPUsStranded
		for _, g := range b.Gaps {
			gaps[g.FreeMilli] += g.GPUs
		}
		for _, d := range b.Dropped {
			x := dropped[d.Kind]
			x.Kind, x.Pods, x.GPU = d.Kind, x.Pods+d.Pods, x.GPU+d.GPU
			dropped[d.Kind] = x
		}
	}
	if n == 0 {
		return m
	}
	f := float64(n)
	m.Arrived /= f
	m.Allocated /= f
	m.PartlyUsedFree /= f
	m.IdleGPUs = (m.IdleGPUs + n/2) / n
	m.IdleGPUsStranded = (m.IdleGPUsStranded + n/2) / n
	for free, g := range gaps {
		m.Gaps = append(m.Gaps, Gap{FreeMilli: free, GPUs: (g + n/2) / n})
	}
	sortGaps(m.Gaps)
	for _, d := range dropped {
		d.Pods = (d.Pods + n/2) / n
		d.GPU /= f
		m.Dropped = append(m.Dropped, d)
	}
	sortDropped(m.Dropped)
	return m
}
