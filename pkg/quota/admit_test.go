package quota

import (
	"maps"
	"strings"
	"testing"
)

// using returns a pod that makes ns use n GPUs.
func using(ns string, n int64) PodUsage {
	return gpuPod(ns+"-used", ns, n, 0, 0)
}

func TestCheckAdmit(t *testing.T) {
	tests := []struct {
		name     string
		capacity Resources // nil leaves the capacity unknown
		quotas   []Quota
		pods     []PodUsage
		ns       string
		req      Resources

		wantAdmit       bool
		wantGoverned    bool
		wantReclaimable bool
		// wantReason must appear in the decision's reason.
		wantReason string
		wantBorrow Resources
	}{
		{
			name:       "namespace without quota is not governed",
			capacity:   gpus(1),
			quotas:     []Quota{gpuQuota("team-a", 1, 1)},
			ns:         "team-z",
			req:        gpus(100),
			wantAdmit:  true,
			wantReason: `namespace "team-z" has no ElasticQuota`,
		},
		{
			name:         "within min is guaranteed",
			capacity:     gpus(8),
			quotas:       []Quota{gpuQuota("team-a", 4, 6), gpuQuota("team-b", 4, 8)},
			pods:         []PodUsage{using("team-a", 1)},
			ns:           "team-a",
			req:          gpus(3),
			wantAdmit:    true,
			wantGoverned: true,
		},
		{
			name:         "borrowing up to max from unused min",
			capacity:     gpus(8),
			quotas:       []Quota{gpuQuota("team-a", 4, 6), gpuQuota("team-b", 4, 8)},
			pods:         []PodUsage{using("team-a", 3)},
			ns:           "team-a",
			req:          gpus(3),
			wantAdmit:    true,
			wantGoverned: true,
			wantBorrow:   gpus(2),
		},
		{
			name:         "already borrowing: only the new part is borrowed",
			capacity:     gpus(8),
			quotas:       []Quota{gpuQuota("team-a", 4, 6), gpuQuota("team-b", 4, 8)},
			pods:         []PodUsage{using("team-a", 5)},
			ns:           "team-a",
			req:          gpus(1),
			wantAdmit:    true,
			wantGoverned: true,
			wantBorrow:   gpus(1),
		},
		{
			name:         "never above max",
			capacity:     gpus(8),
			quotas:       []Quota{gpuQuota("team-a", 4, 5), gpuQuota("team-b", 4, 8)},
			pods:         []PodUsage{using("team-a", 5)},
			ns:           "team-a",
			req:          gpus(1),
			wantGoverned: true,
			wantReason:   `namespace "team-a" would use 6 nvidia.com/gpu, above its max 5`,
		},
		{
			name:         "never above max even with idle capacity",
			capacity:     gpus(100),
			quotas:       []Quota{gpuQuota("team-a", 0, 2)},
			ns:           "team-a",
			req:          gpus(3),
			wantGoverned: true,
			wantReason:   "above its max 2",
		},
		{
			name:         "borrowing limited by others' unused min",
			capacity:     gpus(8),
			quotas:       []Quota{gpuQuota("team-a", 4, 8), gpuQuota("team-b", 4, 8)},
			pods:         []PodUsage{using("team-a", 4), using("team-b", 3)},
			ns:           "team-a",
			req:          gpus(2),
			wantGoverned: true,
			wantReason:   `namespace "team-a" would use 6 nvidia.com/gpu, 2 above its min 4, but only 1 can be borrowed (unused min of other namespaces 1 + unguaranteed capacity 0 - borrowed by other namespaces 0)`,
		},
		{
			name:         "borrowing exactly what others leave unused",
			capacity:     gpus(8),
			quotas:       []Quota{gpuQuota("team-a", 4, 8), gpuQuota("team-b", 4, 8)},
			pods:         []PodUsage{using("team-a", 4), using("team-b", 3)},
			ns:           "team-a",
			req:          gpus(1),
			wantAdmit:    true,
			wantGoverned: true,
			wantBorrow:   gpus(1),
		},
		{
			name:         "borrowing from unguaranteed capacity",
			capacity:     gpus(10),
			quotas:       []Quota{gpuQuota("team-a", 4, 10), gpuQuota("team-b", 3, 10)},
			pods:         []PodUsage{using("team-a", 4), using("team-b", 3)},
			ns:           "team-a",
			req:          gpus(3),
			wantAdmit:    true,
			wantGoverned: true,
			wantBorrow:   gpus(3),
		},
		{
			name:         "borrowing beyond unguaranteed capacity",
			capacity:     gpus(10),
			quotas:       []Quota{gpuQuota("team-a", 4, 10), gpuQuota("team-b", 3, 10)},
			pods:         []PodUsage{using("team-a", 4), using("team-b", 3)},
			ns:           "team-a",
			req:          gpus(4),
			wantGoverned: true,
			wantReason:   "only 3 can be borrowed (unused min of other namespaces 0 + unguaranteed capacity 3 - borrowed by other namespaces 0)",
		},
		{
			name:         "unknown capacity lends nothing beyond unused min",
			quotas:       []Quota{gpuQuota("team-a", 4, 10), gpuQuota("team-b", 3, 10)},
			pods:         []PodUsage{using("team-a", 4), using("team-b", 3)},
			ns:           "team-a",
			req:          gpus(1),
			wantGoverned: true,
			wantReason:   "only 0 can be borrowed",
		},
		{
			name:         "what others borrow is no longer lendable",
			capacity:     gpus(10),
			quotas:       []Quota{gpuQuota("team-a", 4, 10), gpuQuota("team-b", 3, 10)},
			pods:         []PodUsage{using("team-a", 4), using("team-b", 5)},
			ns:           "team-a",
			req:          gpus(2),
			wantGoverned: true,
			wantReason:   "only 1 can be borrowed (unused min of other namespaces 0 + unguaranteed capacity 3 - borrowed by other namespaces 2)",
		},
		{
			name:         "guaranteed capacity others borrow is reclaimable",
			capacity:     gpus(5),
			quotas:       []Quota{gpuQuota("team-a", 4, 5), gpuQuota("team-b", 1, 1)},
			pods:         []PodUsage{using("team-a", 5)},
			ns:           "team-b",
			req:          gpus(1),
			wantGoverned: true, wantReclaimable: true,
			wantReason: `namespace "team-b" would use 1 nvidia.com/gpu, within its min 1, but other namespaces borrow 1 of it`,
		},
		{
			name:         "a borrower cannot reclaim",
			capacity:     gpus(6),
			quotas:       []Quota{gpuQuota("team-a", 4, 6), gpuQuota("team-b", 2, 3)},
			pods:         []PodUsage{using("team-a", 5), using("team-b", 1)},
			ns:           "team-b",
			req:          gpus(2),
			wantGoverned: true,
			wantReason:   "1 above its min 2", // not reclaimable: it would end above min
		},
		{
			name:         "borrower within max but pool exhausted",
			capacity:     gpus(6),
			quotas:       []Quota{gpuQuota("team-a", 2, 6), gpuQuota("team-b", 2, 6)},
			pods:         []PodUsage{using("team-a", 3), using("team-b", 3)},
			ns:           "team-a",
			req:          gpus(1),
			wantGoverned: true,
			wantReason:   "only 1 can be borrowed", // 0 unused + 2 unguaranteed - 1 borrowed by team-b
		},
		{
			name:     "resource missing from min and max is not governed",
			capacity: gpus(4),
			quotas:   []Quota{gpuQuota("team-a", 1, 1)},
			ns:       "team-a",
			req:      Resources{ResourceCPU: 1_000_000, ResourceMemory: 1 << 40},

			wantAdmit:    true,
			wantGoverned: true,
		},
		{
			name:     "usage of a resource a quota does not govern is not borrowing",
			capacity: Resources{ResourceCPU: 10000},
			quotas: []Quota{
				{Namespace: "team-a", Min: Resources{ResourceCPU: 5000}, Max: Resources{ResourceCPU: 10000}},
				gpuQuota("team-b", 0, 4),
			},
			pods:         []PodUsage{withResources(using("team-b", 0), Resources{ResourceCPU: 8000})},
			ns:           "team-a",
			req:          Resources{ResourceCPU: 8000},
			wantAdmit:    true,
			wantGoverned: true,
			wantBorrow:   Resources{ResourceCPU: 3000},
		},
		{
			name:         "resource in max only has min 0 and is all borrowed",
			capacity:     gpus(4),
			quotas:       []Quota{{Namespace: "team-a", Max: gpus(2)}},
			ns:           "team-a",
			req:          gpus(2),
			wantAdmit:    true,
			wantGoverned: true,
			wantBorrow:   gpus(2),
		},
		{
			name:         "resource in min only has no max",
			capacity:     gpus(4),
			quotas:       []Quota{{Namespace: "team-a", Min: gpus(2)}},
			ns:           "team-a",
			req:          gpus(4),
			wantAdmit:    true,
			wantGoverned: true,
			wantBorrow:   gpus(2),
		},
		{
			name:     "reclaimable only if every failing resource is",
			capacity: Resources{ResourceNvidiaGPU: 5, ResourceCPU: 100},
			quotas: []Quota{
				gpuQuota("team-a", 4, 5),
				{Namespace: "team-b", Min: Resources{ResourceNvidiaGPU: 1, ResourceCPU: 10}, Max: Resources{ResourceNvidiaGPU: 1, ResourceCPU: 10}},
			},
			pods:         []PodUsage{using("team-a", 5)},
			ns:           "team-b",
			req:          Resources{ResourceNvidiaGPU: 1, ResourceCPU: 11},
			wantGoverned: true,
			wantReason:   `namespace "team-b" would use 11 cpu, above its max 10; namespace "team-b" would use 1 nvidia.com/gpu, within its min 1`,
		},
		{
			name:     "misconfigured namespaces do not lend",
			capacity: gpus(4),
			quotas: []Quota{
				gpuQuota("team-a", 0, 4),
				{Namespace: "team-b", Min: gpus(4), Max: gpus(3)},
			},
			ns:           "team-a",
			req:          gpus(4),
			wantAdmit:    true, // team-b's min is void, so all 4 are unguaranteed
			wantGoverned: true,
			wantBorrow:   gpus(4),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker()
			if tt.capacity != nil {
				tr.SetClusterCapacity(tt.capacity)
			}
			for _, q := range tt.quotas {
				_ = tr.SetQuota(q.Namespace+"/quota", q) // invalid ones are part of the case
			}
			for _, p := range tt.pods {
				tr.AddPod(p)
			}
			d := tr.CheckAdmit(tt.ns, tt.req)
			if d.Admit != tt.wantAdmit || d.Governed != tt.wantGoverned || d.Reclaimable != tt.wantReclaimable {
				t.Errorf("CheckAdmit = %+v, want admit=%v governed=%v reclaimable=%v",
					d, tt.wantAdmit, tt.wantGoverned, tt.wantReclaimable)
			}
			if !strings.Contains(d.Reason, tt.wantReason) || (tt.wantReason == "" && d.Reason != "") {
				t.Errorf("reason = %q, want it to contain %q", d.Reason, tt.wantReason)
			}
			if !maps.Equal(d.Borrow, tt.wantBorrow) {
				t.Errorf("borrow = %v, want %v", d.Borrow, tt.wantBorrow)
			}
		})
	}
}

// TestIssue683 replays kubernetes-sigs/scheduler-plugins issue 683: with 5
// GPUs, team-a {min 4, max 5} uses all 5 and team-b {min 1, max 1} asks for
// its guaranteed GPU. That must be a reclaimable rejection, reclaim must pick
// team-a's borrowed pod, and team-b must then be admitted.
func TestIssue683(t *testing.T) {
	tr := newTestTracker(t, 5, gpuQuota("team-a", 4, 5), gpuQuota("team-b", 1, 1))
	var podsA []PodUsage
	for i := range 5 {
		p := gpuPod("a"+string(rune('0'+i)), "team-a", 1, 0, i)
		podsA = append(podsA, p)
		if d := tr.AdmitPod(p); !d.Admit {
			t.Fatalf("team-a pod %d: %+v", i, d)
		}
	}
	if d := tr.CheckAdmit("team-a", gpus(1)); d.Admit || d.Reclaimable {
		t.Errorf("team-a above max: %+v, want a non-reclaimable reject", d)
	}

	preemptor := gpuPod("b0", "team-b", 1, 0, 10)
	d := tr.CheckAdmit("team-b", preemptor.Resources)
	if d.Admit || !d.Reclaimable {
		t.Fatalf("team-b within its min: %+v, want a reclaimable reject", d)
	}

	fits := func(victims []PodUsage) bool {
		return tr.CheckAdmitWithout("team-b", preemptor.Resources, victims).Admit
	}
	victims, ok := tr.SelectVictims(preemptor, podsA, fits)
	if !ok || len(victims) != 1 || victims[0].UID != "a4" {
		t.Fatalf("SelectVictims = %v, %v; want team-a's newest pod a4", uids(victims), ok)
	}

	tr.RemovePod(victims[0].UID)
	if d := tr.AdmitPod(preemptor); !d.Admit || len(d.Borrow) != 0 {
		t.Fatalf("team-b after reclaim: %+v, want a guaranteed admit", d)
	}
	if d := tr.CheckAdmit("team-a", gpus(1)); d.Admit {
		t.Errorf("team-a may borrow again although the cluster is full: %+v", d)
	}
}

func TestAdmitPodReplacesOwnRecord(t *testing.T) {
	tr := newTestTracker(t, 4, gpuQuota("team-a", 2, 2))
	if d := tr.AdmitPod(gpuPod("p", "team-a", 2, 0, 0)); !d.Admit {
		t.Fatalf("first admission: %+v", d)
	}
	// Re-admitting the same pod must not count it twice.
	if d := tr.AdmitPod(gpuPod("p", "team-a", 2, 0, 0)); !d.Admit {
		t.Fatalf("re-admission of the same UID: %+v", d)
	}
	if d := tr.AdmitPod(gpuPod("q", "team-a", 1, 0, 0)); d.Admit {
		t.Fatalf("a second pod past max was admitted: %+v", d)
	}
	if got := tr.Used("team-a"); !maps.Equal(got, gpus(2)) {
		t.Errorf("Used = %v, want %v", got, gpus(2))
	}
}

// uids lists the UIDs of pods, for failure messages and comparisons.
func uids(pods []PodUsage) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.UID)
	}
	return out
}

func TestAboveMax(t *testing.T) {
	tr := NewTracker()
	if err := tr.SetQuota("a/q", Quota{Namespace: "a", Max: Resources{ResourceNvidiaGPU: 4}}); err != nil {
		t.Fatal(err)
	}
	tr.AddPod(PodUsage{UID: "p", Namespace: "a", Resources: Resources{ResourceNvidiaGPU: 4}})
	for _, c := range []struct {
		ns   string
		gpus int64
		want bool
	}{{"a", 4, false}, {"a", 5, true}, {"none", 100, false}} {
		got := tr.AboveMax(c.ns, Resources{ResourceNvidiaGPU: c.gpus})
		if (got != "") != c.want {
			t.Errorf("AboveMax(%q, %d) = %q, want above=%v", c.ns, c.gpus, got, c.want)
		}
		if c.want && !strings.Contains(got, "max 4") {
			t.Errorf("reason %q does not name the max", got)
		}
	}
}
