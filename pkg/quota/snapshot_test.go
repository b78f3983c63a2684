package quota

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestSnapshot(t *testing.T) {
	tr := NewTracker()
	tr.SetClusterCapacity(gpus(16))
	_ = tr.SetQuota("team-b/quota", Quota{Namespace: "team-b", Min: Resources{ResourceNvidiaGPU: 2}, Max: Resources{ResourceNvidiaGPU: 8, ResourceCPU: 8000}})
	_ = tr.SetQuota("team-a/quota", gpuQuota("team-a", 4, 8))
	_ = tr.SetQuota("team-c/one", gpuQuota("team-c", 1, 2))
	_ = tr.SetQuota("team-c/two", gpuQuota("team-c", 1, 2))
	_ = tr.SetQuota("team-d/quota", gpuQuota("team-d", 3, 2))
	tr.AddPod(gpuPod("a1", "team-a", 3, 0, 0))
	tr.AddPod(withResources(gpuPod("b1", "team-b", 0, 0, 0), Resources{ResourceNvidiaGPU: 5, ResourceCPU: 1000, ResourceMemory: 1 << 30}))
	tr.AddPod(gpuPod("c1", "team-c", 2, 0, 0))
	tr.AddPod(gpuPod("z1", "team-z", 1, 0, 0)) // no quota: not listed

	got := tr.Snapshot()
	want := []QuotaStatus{
		{
			Namespace: "team-a",
			Quotas:    []string{"team-a/quota"},
			Min:       gpus(4), Max: gpus(8),
			Used:     gpus(3),
			Borrowed: Resources{},
		},
		{
			Namespace: "team-b",
			Quotas:    []string{"team-b/quota"},
			Min:       gpus(2), Max: Resources{ResourceNvidiaGPU: 8, ResourceCPU: 8000},
			Used: Resources{ResourceNvidiaGPU: 5, ResourceCPU: 1000, ResourceMemory: 1 << 30},
			// cpu is governed with min 0, memory is not governed at all.
			Borrowed: Resources{ResourceNvidiaGPU: 3, ResourceCPU: 1000},
		},
		{
			Namespace: "team-c",
			Quotas:    []string{"team-c/one", "team-c/two"},
			Used:      gpus(2),
			Borrowed:  Resources{},
			Problem:   "2 ElasticQuotas",
		},
		{
			Namespace: "team-d",
			Quotas:    []string{"team-d/quota"},
			Min:       gpus(3), Max: gpus(2),
			Borrowed: Resources{},
			Problem:  `"team-d/quota" is invalid`,
		},
	}
	if len(got) != len(want) {
		t.Fatalf("Snapshot has %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Namespace != w.Namespace || !slices.Equal(g.Quotas, w.Quotas) ||
			!maps.Equal(g.Min, w.Min) || !maps.Equal(g.Max, w.Max) ||
			!maps.Equal(g.Used, w.Used) || !maps.Equal(g.Borrowed, w.Borrowed) {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
		if (w.Problem == "") != (g.Problem == "") || !strings.Contains(g.Problem, w.Problem) {
			t.Errorf("entry %d problem = %q, want one containing %q", i, g.Problem, w.Problem)
		}
	}

	// The snapshot is a copy.
	got[0].Used[ResourceNvidiaGPU] = 100
	got[0].Min[ResourceNvidiaGPU] = 100
	if again := tr.Snapshot(); again[0].Used[ResourceNvidiaGPU] != 3 || again[0].Min[ResourceNvidiaGPU] != 4 {
		t.Errorf("Snapshot aliases tracker state: %+v", again[0])
	}
}
