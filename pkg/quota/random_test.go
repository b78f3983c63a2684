package quota

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// randomCluster is the setting of the randomized tests: four namespaces with
// quotas on GPUs and CPU, and a capacity that covers all the mins.
var randomCluster = struct {
	capacity Resources
	quotas   []Quota
}{
	capacity: Resources{ResourceNvidiaGPU: 16, ResourceCPU: 64000},
	quotas: []Quota{
		{Namespace: "ns-0", Min: Resources{ResourceNvidiaGPU: 4, ResourceCPU: 16000}, Max: Resources{ResourceNvidiaGPU: 8, ResourceCPU: 32000}},
		{Namespace: "ns-1", Min: Resources{ResourceNvidiaGPU: 4, ResourceCPU: 8000}, Max: Resources{ResourceNvidiaGPU: 6, ResourceCPU: 64000}},
		{Namespace: "ns-2", Min: Resources{ResourceNvidiaGPU: 2}, Max: Resources{ResourceNvidiaGPU: 16, ResourceCPU: 16000}},
		{Namespace: "ns-3", Min: Resources{ResourceNvidiaGPU: 3, ResourceCPU: 8000}},
	},
}

func newRandomTracker(t *testing.T) *Tracker {
	t.Helper()
	tr := NewTracker()
	tr.SetClusterCapacity(randomCluster.capacity)
	for _, q := range randomCluster.quotas {
		if err := tr.SetQuota(q.Namespace+"/quota", q); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// randomPods returns n pods spread over the four namespaces.
func randomPods(rng *rand.Rand, n int) []PodUsage {
	pods := make([]PodUsage, n)
	for i := range pods {
		pods[i] = PodUsage{
			UID:       fmt.Sprintf("pod-%03d", i),
			Namespace: fmt.Sprintf("ns-%d", rng.IntN(4)),
			Priority:  int32(rng.IntN(3)),
			StartTime: time.Unix(int64(i), 0),
			Resources: Resources{
				ResourceNvidiaGPU: int64(rng.IntN(4)),
				ResourceCPU:       int64(500 * (1 + rng.IntN(8))),
			},
		}
		if rng.IntN(5) == 0 {
			pods[i].Gang = fmt.Sprintf("gang-%d", rng.IntN(3))
		}
	}
	return pods
}

// checkInvariants fails the test if any namespace is above its max, or if
// the quota namespaces together use more than the cluster has.
func checkInvariants(t *testing.T, tr *Tracker, when string) {
	t.Helper()
	total := Resources{}
	for _, s := range tr.Snapshot() {
		if !s.Used.LessOrEqual(s.Max) {
			t.Errorf("%s: namespace %s uses %v, above its max %v", when, s.Namespace, s.Used, s.Max)
		}
		total = total.Add(s.Used)
	}
	if !total.LessOrEqual(randomCluster.capacity) {
		t.Errorf("%s: quota namespaces use %v, above the capacity %v", when, total, randomCluster.capacity)
	}
}

// wouldBreak is a reference for CheckAdmit written from the invariant rather
// than from the per-namespace rules: it reports whether adding req to ns
// would exceed ns's max, or make the namespaces together borrow more than
// the unused mins and the unguaranteed capacity can lend.
func wouldBreak(tr *Tracker, ns string, req Resources) bool {
	used := map[string]Resources{}
	for _, q := range randomCluster.quotas {
		used[q.Namespace] = tr.Used(q.Namespace)
	}
	used[ns] = used[ns].Add(req)
	for _, q := range randomCluster.quotas {
		if q.Namespace == ns && !used[ns].LessOrEqual(q.Max) {
			return true
		}
	}
	for name, amount := range req {
		if amount <= 0 {
			continue
		}
		var borrowed, unused, sumMin int64
		for _, q := range randomCluster.quotas {
			u, m := used[q.Namespace][name], q.Min[name]
			sumMin += m
			if u > m {
				borrowed += u - m
			} else {
				unused += m - u
			}
		}
		if borrowed > unused+max(0, randomCluster.capacity[name]-sumMin) {
			return true
		}
	}
	return false
}

// TestRandomAdmission drives 200 pods of four namespaces through CheckAdmit
// and AddPod in a random (seeded) order, with departures and reclaims mixed
// in, and checks after every admission that no namespace exceeds its max
// and the cluster is never oversubscribed. Every decision is also compared
// with the invariant-based reference.
func TestRandomAdmission(t *testing.T) {
	rng := rand.New(rand.NewPCG(683, 2026))
	tr := newRandomTracker(t)
	var running []PodUsage
	admitted, reclaims := 0, 0
	for _, p := range randomPods(rng, 200) {
		if len(running) > 0 && rng.IntN(4) == 0 {
			i := rng.IntN(len(running))
			tr.RemovePod(running[i].UID)
			running = append(running[:i], running[i+1:]...)
		}

		d := tr.CheckAdmit(p.Namespace, p.Resources)
		if d.Admit == wouldBreak(tr, p.Namespace, p.Resources) {
			t.Fatalf("%s in %s asking %v: decision %+v disagrees with the reference", p.UID, p.Namespace, p.Resources, d)
		}
		if !d.Admit && d.Reclaimable {
			fits := func(victims []PodUsage) bool {
				return tr.CheckAdmitWithout(p.Namespace, p.Resources, victims).Admit
			}
			within := withinMin(tr, p)
			before := map[string]Resources{}
			for _, q := range randomCluster.quotas {
				before[q.Namespace] = tr.Used(q.Namespace).Clone()
			}
			victims, ok := tr.SelectVictims(p, running, fits)
			if !ok {
				// Reclaim can be impossible, for instance when every
				// borrowed GPU sits in a pod bigger than what its
				// namespace borrows; the pod then waits.
				continue
			}
			for _, v := range victims {
				tr.RemovePod(v.UID)
				running = removeUID(running, v.UID)
			}
			checkReclaimKeptMins(t, tr, p, within, before, victims)
			reclaims++
			d = tr.CheckAdmit(p.Namespace, p.Resources)
			if !d.Admit {
				t.Fatalf("%s: still rejected after reclaiming %v: %s", p.UID, uids(victims), d.Reason)
			}
		}
		if !d.Admit {
			continue
		}
		tr.AddPod(p)
		running = append(running, p)
		admitted++
		checkInvariants(t, tr, "after admitting "+p.UID)
	}
	t.Logf("admitted %d of 200 pods, %d after reclaim", admitted, reclaims)
	// Guard against a test that passes by admitting nothing.
	if admitted < 50 || reclaims == 0 {
		t.Errorf("admitted %d pods with %d reclaims; the scenario no longer exercises the rules", admitted, reclaims)
	}
}

// withinMin returns the resources that p needs and would get within its
// namespace's min: the only ones reclaim may take from other namespaces.
func withinMin(tr *Tracker, p PodUsage) []string {
	var out []string
	for _, q := range randomCluster.quotas {
		if q.Namespace != p.Namespace {
			continue
		}
		for name, amount := range p.Resources {
			if amount > 0 && tr.Used(p.Namespace)[name]+amount <= q.Min[name] {
				out = append(out, name)
			}
		}
	}
	return out
}

// checkReclaimKeptMins fails the test if reclaim for p took another
// namespace below its min on a reclaimed resource, or took a pod from
// another namespace that frees none of them.
func checkReclaimKeptMins(t *testing.T, tr *Tracker, p PodUsage, reclaimed []string, before map[string]Resources, victims []PodUsage) {
	t.Helper()
	for _, v := range victims {
		if v.Namespace == p.Namespace {
			if v.Priority >= p.Priority {
				t.Errorf("reclaim for %s (priority %d) took %s of its own namespace at priority %d", p.UID, p.Priority, v.UID, v.Priority)
			}
			continue
		}
		frees := false
		for _, q := range randomCluster.quotas {
			if q.Namespace != v.Namespace {
				continue
			}
			for _, name := range reclaimed {
				// Only what the victim's namespace borrowed is reclaimed,
				// and never below its min.
				if before[v.Namespace][name] <= q.Min[name] {
					continue
				}
				if v.Resources[name] > 0 {
					frees = true
				}
				if tr.Used(v.Namespace)[name] < q.Min[name] {
					t.Errorf("reclaim for %s took %s below its min %s", p.UID, v.Namespace, name)
				}
			}
		}
		if !frees {
			t.Errorf("reclaim for %s took %s, which frees nothing its namespace borrowed of %v", p.UID, v.UID, reclaimed)
		}
	}
}

func removeUID(pods []PodUsage, uid string) []PodUsage {
	for i, p := range pods {
		if p.UID == uid {
			return append(pods[:i], pods[i+1:]...)
		}
	}
	return pods
}

// TestConcurrentAdmission races the same kind of workload through AdmitPod
// from several goroutines: whatever the interleaving, no namespace may end
// up above its max and the cluster may not be oversubscribed.
func TestConcurrentAdmission(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	tr := newRandomTracker(t)
	pods := randomPods(rng, 200)
	rng.Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })

	work := make(chan PodUsage)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			var mine []string
			for p := range work {
				if len(mine) > 0 && int(p.StartTime.Unix())%4 == w {
					tr.RemovePod(mine[0])
					mine = mine[1:]
				}
				if d := tr.AdmitPod(p); d.Admit {
					mine = append(mine, p.UID)
					checkInvariants(t, tr, "after admitting "+p.UID)
				}
			}
		})
	}
	for _, p := range pods {
		work <- p
	}
	close(work)
	wg.Wait()
	checkInvariants(t, tr, "at the end")
}
