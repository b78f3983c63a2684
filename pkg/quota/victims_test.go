package quota

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// fitsFunc builds a SelectVictims callback for a test case.
type fitsFunc func(tr *Tracker, preemptor PodUsage) func([]PodUsage) bool

// freesGPUs fits once the victims free at least n GPUs, standing in for a
// node-level fit check.
func freesGPUs(n int64) fitsFunc {
	return func(*Tracker, PodUsage) func([]PodUsage) bool {
		return func(victims []PodUsage) bool {
			var freed int64
			for _, v := range victims {
				freed += v.Resources[ResourceNvidiaGPU]
			}
			return freed >= n
		}
	}
}

// anyVictim fits as soon as there is a victim, so the result shows exactly
// which candidates are eligible first.
func anyVictim(*Tracker, PodUsage) func([]PodUsage) bool {
	return func(victims []PodUsage) bool { return len(victims) > 0 }
}

// inQuota fits when the preemptor would be admitted by quota.
func inQuota(tr *Tracker, p PodUsage) func([]PodUsage) bool {
	return func(victims []PodUsage) bool {
		return tr.CheckAdmitWithout(p.Namespace, p.Resources, victims).Admit
	}
}

func inGang(p PodUsage, gang string) PodUsage {
	p.Gang = gang
	return p
}

func withResources(p PodUsage, r Resources) PodUsage {
	p.Resources = r
	return p
}

func TestSelectVictims(t *testing.T) {
	tests := []struct {
		name     string
		capacity int64
		quotas   []Quota
		// pods are tracked and, unless candidates is set, are the candidates.
		pods       []PodUsage
		candidates []PodUsage
		preemptor  PodUsage
		fits       fitsFunc
		want       []string
		wantOK     bool
	}{
		{
			name:     "lowest priority first, then newest first",
			capacity: 5,
			quotas:   []Quota{gpuQuota("team-a", 2, 8), gpuQuota("team-b", 3, 3)},
			pods: []PodUsage{
				gpuPod("a-old-low", "team-a", 1, 0, 1),
				gpuPod("a-new-low", "team-a", 1, 0, 5),
				gpuPod("a-mid", "team-a", 1, 5, 3),
				gpuPod("a-high-new", "team-a", 1, 10, 9),
				gpuPod("a-high-old", "team-a", 1, 10, 0),
			},
			preemptor: gpuPod("b", "team-b", 3, 0, 20),
			fits:      inQuota,
			want:      []string{"a-new-low", "a-old-low", "a-mid"},
			wantOK:    true,
		},
		{
			name:     "never below min",
			capacity: 8,
			quotas:   []Quota{gpuQuota("team-a", 2, 8), gpuQuota("team-b", 3, 8)},
			pods: []PodUsage{
				gpuPod("a1", "team-a", 1, 0, 1),
				gpuPod("a2", "team-a", 1, 0, 2),
				gpuPod("a3", "team-a", 1, 0, 3),
				gpuPod("a4", "team-a", 1, 0, 4),
				gpuPod("a5", "team-a", 1, 0, 5),
			},
			preemptor: gpuPod("b", "team-b", 3, 0, 20),
			fits:      freesGPUs(4), // only 3 are borrowed
			wantOK:    false,
		},
		{
			name:     "a namespace within its min is never preempted",
			capacity: 8,
			quotas:   []Quota{gpuQuota("team-a", 5, 8), gpuQuota("team-b", 3, 3)},
			pods: []PodUsage{
				gpuPod("a1", "team-a", 2, -100, 1),
				gpuPod("a2", "team-a", 3, -100, 2),
			},
			preemptor: gpuPod("b", "team-b", 1, 1000, 20),
			fits:      anyVictim,
			wantOK:    false,
		},
		{
			name:     "reclaim ignores the borrower's priority",
			capacity: 5,
			quotas:   []Quota{gpuQuota("team-a", 4, 5), gpuQuota("team-b", 1, 1)},
			pods: []PodUsage{
				gpuPod("a1", "team-a", 4, 1000, 1),
				gpuPod("a2", "team-a", 1, 1000, 2),
			},
			preemptor: gpuPod("b", "team-b", 1, 0, 20),
			fits:      inQuota,
			want:      []string{"a2"},
			wantOK:    true,
		},
		{
			name:     "a gang is preempted whole",
			capacity: 4,
			quotas:   []Quota{gpuQuota("team-a", 1, 5), gpuQuota("team-b", 1, 1)},
			pods: []PodUsage{
				inGang(gpuPod("ga1", "team-a", 1, 0, 8), "train"),
				inGang(gpuPod("ga2", "team-a", 1, 0, 9), "train"),
				gpuPod("a3", "team-a", 1, 0, 1),
				gpuPod("a4", "team-a", 1, 0, 2),
			},
			preemptor: gpuPod("b", "team-b", 1, 0, 20),
			fits:      inQuota,
			want:      []string{"ga1", "ga2"},
			wantOK:    true,
		},
		{
			name:     "a gang that would take its namespace below min is skipped",
			capacity: 3,
			quotas:   []Quota{gpuQuota("team-a", 2, 4), gpuQuota("team-b", 1, 1)},
			pods: []PodUsage{
				inGang(gpuPod("ga1", "team-a", 1, 0, 8), "train"),
				inGang(gpuPod("ga2", "team-a", 1, 0, 9), "train"),
				gpuPod("a3", "team-a", 1, 0, 1),
			},
			preemptor: gpuPod("b", "team-b", 1, 0, 20),
			fits:      inQuota,
			want:      []string{"a3"},
			wantOK:    true,
		},
		{
			name:     "gangs are keyed by namespace too",
			capacity: 8,
			quotas:   []Quota{gpuQuota("team-a", 0, 8), gpuQuota("team-c", 0, 8), gpuQuota("team-b", 1, 1)},
			pods: []PodUsage{
				inGang(gpuPod("ga", "team-a", 1, 0, 9), "train"),
				inGang(gpuPod("gc", "team-c", 1, 0, 1), "train"),
			},
			preemptor: gpuPod("b", "team-b", 1, 0, 20),
			fits:      anyVictim,
			want:      []string{"ga"},
			wantOK:    true,
		},
		{
			name:     "own namespace: only strictly lower priority",
			capacity: 8,
			quotas:   []Quota{gpuQuota("team-a", 4, 4)},
			pods: []PodUsage{
				gpuPod("a-low-old", "team-a", 1, 1, 0),
				gpuPod("a-low-new", "team-a", 1, 1, 5),
				gpuPod("a-same", "team-a", 1, 50, 9),
				gpuPod("a-high", "team-a", 1, 100, 9),
			},
			preemptor: gpuPod("a-new", "team-a", 2, 50, 20),
			fits:      inQuota,
			want:      []string{"a-low-new", "a-low-old"},
			wantOK:    true,
		},
		{
			name:     "own namespace: nothing at equal or higher priority",
			capacity: 8,
			quotas:   []Quota{gpuQuota("team-a", 2, 2)},
			pods: []PodUsage{
				gpuPod("a-same", "team-a", 1, 50, 9),
				gpuPod("a-high", "team-a", 1, 100, 9),
			},
			preemptor: gpuPod("a-new", "team-a", 1, 50, 20),
			fits:      anyVictim,
			wantOK:    false,
		},
		{
			name:     "own namespace gang with a member at equal priority is kept whole",
			capacity: 8,
			quotas:   []Quota{gpuQuota("team-a", 2, 2)},
			pods: []PodUsage{
				inGang(gpuPod("g-low", "team-a", 1, 1, 9), "train"),
				inGang(gpuPod("g-same", "team-a", 1, 50, 9), "train"),
			},
			preemptor: gpuPod("a-new", "team-a", 1, 50, 20),
			fits:      anyVictim,
			wantOK:    false,
		},
		{
			name:     "a borrower cannot reclaim",
			capacity: 6,
			quotas:   []Quota{gpuQuota("team-a", 2, 6), gpuQuota("team-b", 2, 6)},
			pods: []PodUsage{
				gpuPod("a1", "team-a", 3, 100, 0),
				gpuPod("b1", "team-b", 1, 0, 5),
				gpuPod("b2", "team-b", 2, 0, 6),
			},
			preemptor: gpuPod("a-new", "team-a", 1, 100, 20),
			fits:      anyVictim,
			wantOK:    false,
		},
		{
			name:     "reprieve drops victims that were not needed",
			capacity: 8,
			quotas:   []Quota{gpuQuota("team-a", 0, 8), gpuQuota("team-b", 2, 2)},
			pods: []PodUsage{
				gpuPod("a-small", "team-a", 1, 0, 5),
				gpuPod("a-big", "team-a", 2, 1, 0),
			},
			preemptor: gpuPod("b", "team-b", 2, 0, 20),
			fits:      freesGPUs(2),
			want:      []string{"a-big"},
			wantOK:    true,
		},
		{
			name:      "no victims when the preemptor already fits",
			capacity:  8,
			quotas:    []Quota{gpuQuota("team-a", 0, 8), gpuQuota("team-b", 2, 2)},
			pods:      []PodUsage{gpuPod("a1", "team-a", 1, 0, 5)},
			preemptor: gpuPod("b", "team-b", 2, 0, 20),
			fits:      inQuota,
			wantOK:    true,
		},
		{
			name:     "repeated candidates count once",
			capacity: 8,
			quotas:   []Quota{gpuQuota("team-a", 0, 8)},
			pods:     []PodUsage{gpuPod("a1", "team-a", 1, 0, 1)},
			candidates: []PodUsage{
				gpuPod("a1", "team-a", 1, 0, 1),
				gpuPod("a1", "team-a", 1, 0, 1),
			},
			preemptor: gpuPod("a2", "team-a", 2, 10, 20),
			fits:      freesGPUs(2),
			wantOK:    false,
		},
		{
			name:       "no victims needed and none eligible",
			capacity:   8,
			quotas:     []Quota{gpuQuota("team-b", 2, 2)},
			candidates: []PodUsage{},
			preemptor:  gpuPod("b", "team-b", 2, 0, 20),
			fits:       inQuota,
			wantOK:     true,
		},
		{
			name:     "victims must free a resource being reclaimed",
			capacity: 4,
			quotas: []Quota{
				{Namespace: "team-a", Min: Resources{ResourceCPU: 0}, Max: Resources{ResourceNvidiaGPU: 4, ResourceCPU: 8000}},
				gpuQuota("team-b", 1, 1),
			},
			pods: []PodUsage{
				gpuPod("a-gpu", "team-a", 1, 0, 0),
				withResources(gpuPod("a-cpu", "team-a", 0, 0, 9), Resources{ResourceCPU: 4000}),
			},
			preemptor: gpuPod("b", "team-b", 1, 0, 20),
			fits:      anyVictim,
			want:      []string{"a-gpu"},
			wantOK:    true,
		},
		{
			name:     "ungoverned preemptor only preempts ungoverned lower-priority pods",
			capacity: 8,
			quotas:   []Quota{gpuQuota("team-a", 0, 8)},
			pods: []PodUsage{
				gpuPod("a1", "team-a", 1, 0, 9),
				gpuPod("y-high", "team-y", 1, 20, 9),
				gpuPod("y-low", "team-y", 1, 0, 1),
			},
			preemptor: gpuPod("z", "team-z", 1, 10, 20),
			fits:      anyVictim,
			want:      []string{"y-low"},
			wantOK:    true,
		},
		{
			name:     "the preemptor is never its own victim",
			capacity: 2,
			quotas:   []Quota{gpuQuota("team-a", 0, 2), gpuQuota("team-b", 2, 2)},
			pods:     []PodUsage{gpuPod("a1", "team-a", 1, 0, 1)},
			candidates: []PodUsage{
				gpuPod("b", "team-b", 1, -1, 20), // a stale record of the preemptor itself
				gpuPod("a1", "team-a", 1, 0, 1),
			},
			preemptor: gpuPod("b", "team-b", 1, 0, 20),
			fits:      freesGPUs(2),
			wantOK:    false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestTracker(t, tt.capacity, tt.quotas...)
			for _, p := range tt.pods {
				tr.AddPod(p)
			}
			candidates := tt.candidates
			if candidates == nil {
				candidates = tt.pods
			}
			fits := tt.fits(tr, tt.preemptor)

			got, ok := tr.SelectVictims(tt.preemptor, candidates, fits)
			if ok != tt.wantOK || !slices.Equal(uids(got), tt.want) {
				t.Fatalf("SelectVictims = %v, %v; want %v, %v", uids(got), ok, tt.want, tt.wantOK)
			}
			// The order of candidates must not matter.
			reversed := slices.Clone(candidates)
			slices.Reverse(reversed)
			again, okAgain := tr.SelectVictims(tt.preemptor, reversed, fits)
			if okAgain != ok || !slices.Equal(uids(again), uids(got)) {
				t.Errorf("with candidates reversed: %v, %v; want %v, %v", uids(again), okAgain, uids(got), ok)
			}
		})
	}
}

// TestSelectVictimsMayCallBack checks that fits can use the Tracker, which
// the adapter's quota check does, without deadlocking.
func TestSelectVictimsMayCallBack(t *testing.T) {
	tr := newTestTracker(t, 2, gpuQuota("team-a", 1, 2), gpuQuota("team-b", 1, 1))
	tr.AddPod(gpuPod("a1", "team-a", 2, 0, 0))
	preemptor := gpuPod("b", "team-b", 1, 0, 1)
	fits := func(victims []PodUsage) bool {
		// A concurrent writer must not wedge a read lock taken here.
		done := make(chan struct{})
		go func() { tr.SetClusterCapacity(gpus(2)); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("fits was called with the tracker locked")
		}
		_ = tr.Snapshot()
		return len(victims) > 0
	}
	if got, ok := tr.SelectVictims(preemptor, []PodUsage{gpuPod("a1", "team-a", 2, 0, 0)}, fits); ok {
		t.Errorf("took %v although a1 would take team-a below its min", uids(got))
	}
}

// TestSelectVictimsFewFitChecks: a gang's fit check simulates the whole
// cluster, so SelectVictims must find the shortest fitting prefix of a long
// candidate list with O(log n) checks, and still return the same victims
// as adding candidates one by one would.
func TestSelectVictimsFewFitChecks(t *testing.T) {
	tr := NewTracker() // no quotas: plain priority preemption
	var candidates []PodUsage
	for i := 0; i < 1000; i++ {
		p := gpuPod(fmt.Sprintf("v%04d", i), "default", 1, int32(i), 0)
		tr.AddPod(p)
		candidates = append(candidates, p)
	}
	preemptor := gpuPod("p", "default", 37, 5000, 0)
	calls := 0
	fits := func(victims []PodUsage) bool {
		calls++
		return len(victims) >= 37
	}
	got, ok := tr.SelectVictims(preemptor, candidates, fits)
	if !ok || len(got) != 37 {
		t.Fatalf("got %d victims (ok=%v), want 37", len(got), ok)
	}
	for i, v := range got {
		if want := fmt.Sprintf("v%04d", i); v.UID != want {
			t.Fatalf("victim %d is %s, want %s (lowest priorities first)", i, v.UID, want)
		}
	}
	// 1 (no victims) + ~2 log2(37) (galloping, bisection) + 37 (reprieve).
	if calls > 1+2*7+37 {
		t.Errorf("%d fit checks for 1000 candidates, want O(log n) before the reprieve", calls)
	}
}

// TestSelectVictimsMultiResource is scheduler-plugins' "cross-namespace
// preemption" scenario: quotas over CPU and memory, ns1 borrows 50 of
// ns2's memory while far below its CPU min. ns2, within its min, reclaims
// the memory from ns1's lowest-priority pod; ns1's being under its CPU min
// does not shield a pod of a namespace that borrows what ns2 is owed.
func TestSelectVictimsMultiResource(t *testing.T) {
	pod := func(uid, ns string, priority int32, start int) PodUsage {
		return PodUsage{UID: uid, Namespace: ns, Priority: priority, StartTime: time.Unix(int64(start), 0),
			Resources: Resources{ResourceMemory: 50, ResourceCPU: 10}}
	}
	quotaOf := func(ns string) Quota {
		return Quota{Namespace: ns, Min: Resources{ResourceMemory: 100, ResourceCPU: 100}, Max: Resources{ResourceMemory: 200, ResourceCPU: 200}}
	}
	freesMemory := func(tr *Tracker, p PodUsage) func([]PodUsage) bool {
		return func(victims []PodUsage) bool {
			var freed int64
			for _, v := range victims {
				freed += v.Resources[ResourceMemory]
			}
			// 200 of memory in the cluster, 150 + 50 in use.
			return freed >= 50 && tr.CheckAdmitWithout(p.Namespace, p.Resources, victims).Admit
		}
	}
	tests := []struct {
		name      string
		pods      []PodUsage
		preemptor PodUsage
		want      []string
		wantOK    bool
	}{
		{
			name:      "the borrower of memory loses its lowest-priority pod",
			pods:      []PodUsage{pod("p1", "ns1", 5, 1), pod("p2", "ns1", 5, 2), pod("p3", "ns1", 1, 3), pod("p4", "ns2", 5, 4)},
			preemptor: pod("p5", "ns2", 5, 10),
			want:      []string{"p3"},
			wantOK:    true,
		},
		{
			name:      "beyond its own min the preemptor reclaims nothing",
			pods:      []PodUsage{pod("p1", "ns1", 5, 1), pod("p2", "ns1", 5, 2), pod("p3", "ns1", 1, 3), pod("p4", "ns2", 5, 4), pod("p5", "ns2", 5, 5)},
			preemptor: pod("p6", "ns2", 1, 10),
			wantOK:    false,
		},
		{
			name: "a lender within its memory min keeps its pods",
			// ns1 uses 100 memory (its min) and lends nothing.
			pods:      []PodUsage{pod("p1", "ns1", 1, 1), pod("p2", "ns1", 1, 2), pod("p4", "ns2", 5, 4)},
			preemptor: pod("p5", "ns2", 5, 10),
			wantOK:    false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker()
			tr.SetClusterCapacity(Resources{ResourceMemory: 200, ResourceCPU: 200_000})
			for _, ns := range []string{"ns1", "ns2"} {
				if err := tr.SetQuota(ns+"/quota", quotaOf(ns)); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range tt.pods {
				tr.AddPod(p)
			}
			got, ok := tr.SelectVictims(tt.preemptor, tt.pods, freesMemory(tr, tt.preemptor))
			var names []string
			for _, v := range got {
				names = append(names, v.UID)
			}
			if ok != tt.wantOK || !slices.Equal(names, tt.want) {
				t.Errorf("SelectVictims = %v, %v; want %v, %v", names, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestNoCostlier(t *testing.T) {
	p := func(priority int32) PodUsage { return PodUsage{Priority: priority} }
	tests := []struct {
		a, b []PodUsage
		want bool
	}{
		{a: []PodUsage{p(1), p(1)}, b: []PodUsage{p(1), p(1)}, want: true},
		{a: []PodUsage{p(1)}, b: []PodUsage{p(1), p(1)}, want: true},
		{a: []PodUsage{p(1), p(1), p(1)}, b: []PodUsage{p(1), p(1)}, want: false},
		{a: []PodUsage{p(1), p(5)}, b: []PodUsage{p(1), p(2)}, want: false},
		{a: []PodUsage{p(0), p(2)}, b: []PodUsage{p(2), p(1)}, want: true},
	}
	for i, tt := range tests {
		if got := NoCostlier(tt.a, tt.b); got != tt.want {
			t.Errorf("case %d: NoCostlier = %v, want %v", i, got, tt.want)
		}
	}
}
