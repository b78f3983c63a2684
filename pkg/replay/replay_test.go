package replay

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/tessera-sched/tessera/pkg/kube"
)

// traceDir is the openb trace shipped beside the repository (../shared).
func traceDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data", "openb")
}

func loadTrace(t *testing.T, pods string) ([]NodeRow, []PodRow) {
	t.Helper()
	nodes, err := ReadNodesFile(filepath.Join(traceDir(t), "openb_node_list_gpu_node.csv"))
	if err != nil {
		t.Fatal(err)
	}
	podRows, err := ReadPodsFile(filepath.Join(traceDir(t), pods))
	if err != nil {
		t.Fatal(err)
	}
	return nodes, podRows
}

func TestReadTrace(t *testing.T) {
	nodes, pods := loadTrace(t, "openb_pod_list_default.csv")
	gpus := 0
	for _, n := range nodes {
		gpus += n.GPUs
	}
	if len(nodes) != 1213 || gpus != 6212 || len(pods) != 8152 {
		t.Fatalf("read %d nodes, %d GPUs, %d pods; the trace has 1213, 6212, 8152", len(nodes), gpus, len(pods))
	}
	_, err := ReadPods(strings.NewReader("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1000,1024,2,500\n"), "bad.csv")
	if err == nil || !strings.Contains(err.Error(), "bad.csv:2: column gpu_milli") {
		t.Errorf("error %v does not name file, line and column", err)
	}
}

func TestSample(t *testing.T) {
	_, pods := loadTrace(t, "openb_pod_list_default.csv")
	a := Sample(pods, 6212*1000, 1.3, 42)
	b := Sample(pods, 6212*1000, 1.3, 42)
	c := Sample(pods, 6212*1000, 1.3, 43)
	var total int64
	for _, p := range a {
		total += p.GPURequestMilli()
	}
	// The draw that would pass the target ends the sampling; only a
	// multi-GPU pod drawn within one GPU of it can overshoot.
	if target := int64(1.3 * 6212 * 1000); total <= target-1000 || total > target+7000 {
		t.Errorf("sampled %d milli, want within a GPU below 1.3 x capacity", total)
	}
	seen := map[string]bool{}
	for _, p := range a[:len(pods)] {
		seen[p.Name] = true
	}
	if len(seen) != len(pods) {
		t.Errorf("the first %d pods hold %d distinct trace pods, want the whole trace once", len(pods), len(seen))
	}
	if len(a) != len(b) || a[0].Name != b[0].Name || a[len(a)-1].Name != b[len(b)-1].Name {
		t.Error("same seed, different sample")
	}
	if len(a) == len(c) && a[0].Name == c[0].Name && a[1].Name == c[1].Name {
		t.Error("different seeds, same sample")
	}
}

// TestSampleMatchesArtifact checks that Sample generates the pod sequence
// of the FGD paper's simulator. Early on every pod fits, so the curve there
// (the mean allocation over the pods whose arrived GPU request rounds to k
// percent, computed as the artifact's analysis does: arrived rounded half to
// even, allocation to two decimals) depends only on the sequence; the wants
// are the artifact's published per-seed curves
// (experiments/analysis/expected_results/analysis_allo_discrete.csv,
// workload openb_pod_list_cpu050, columns 0-10).
func TestSampleMatchesArtifact(t *testing.T) {
	_, pods := loadTrace(t, "openb_pod_list_cpu050.csv")
	const capacity = 6212 * 1000
	for seed, want := range map[int64][]float64{
		42: {0.25, 0.99, 2.0, 2.99, 4.03, 4.97, 6.07, 6.96, 7.93, 8.98, 9.99},
		43: {0.24, 1.02, 1.99, 3.02, 3.99, 5.0, 5.97, 7.01, 7.99, 9.01, 10.02},
	} {
		sums, counts := map[int]float64{}, map[int]int{}
		var arrived int64
		for _, p := range Sample(pods, capacity, 1.3, seed) {
			arrived += p.GPURequestMilli()
			k := int(math.RoundToEven(float64(arrived) / capacity * 100))
			if k >= len(want) {
				break
			}
			sums[k] += math.Round(float64(arrived)/capacity*100*100) / 100
			counts[k]++
		}
		for k, w := range want {
			if got := math.Round(sums[k]/float64(counts[k])*100) / 100; got != w {
				t.Errorf("seed %d: curve at %d %% is %.2f, the artifact's is %.2f", seed, k, got, w)
			}
		}
	}
}

// TestReplaySliceInvariants replays a slice of the trace (one seed, a few
// hundred pods on a few dozen nodes, so the cluster fills up) through the
// real framework and plugins, for both profiles, and checks invariants of
// the final state — not a number.
func TestReplaySliceInvariants(t *testing.T) {
	nodes, pods := loadTrace(t, "openb_pod_list_default.csv")
	// Every 30th node: all GPU models, a cluster small enough to fill.
	var slice []NodeRow
	for i := 0; i < len(nodes); i += 30 {
		slice = append(slice, nodes[i])
	}
	for _, profile := range []Profile{ProfileTessera, ProfileBaseline} {
		t.Run(string(profile), func(t *testing.T) {
			ctx := context.Background()
			var sim *Simulator
			res, err := runWith(ctx, Options{Nodes: slice, Pods: pods, Seeds: []int64{42}, Inflate: 1.3, Profile: profile}, &sim)
			if err != nil {
				t.Fatal(err)
			}
			sr := res.Seeds[0]
			if sr.Scheduled == 0 || sr.Dropped == 0 {
				t.Fatalf("weak test: %d scheduled, %d dropped", sr.Scheduled, sr.Dropped)
			}
			for _, p := range sr.Curve {
				// arrived is rounded to whole percent: allow half a point.
				if p.Allocated > float64(p.Arrived)+0.5 || p.Allocated < 0 {
					t.Errorf("allocated %.2f%% > arrived %d%%", p.Allocated, p.Arrived)
				}
			}
			if last := sr.Curve[len(sr.Curve)-1]; last.Arrived < 125 || last.Allocated > 100 {
				t.Errorf("curve ends at arrived %d%%, allocated %.2f%%: want arrived near 130%%, allocated at most 100%%", last.Arrived, last.Allocated)
			}
			if sr.AllocAt100 <= 0 || sr.AllocAt100 > 100 {
				t.Errorf("allocation at 100%% arrived = %v", sr.AllocAt100)
			}
			checkBreakdown(t, res.GPUs, sr.AtFull)
			for _, ni := range sim.NodeInfos() {
				node := ni.Node()
				var cpu, mem int64
				var podsOn []*v1.Pod
				for _, pi := range ni.GetPods() {
					p := pi.GetPod()
					cpu += p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
					mem += p.Spec.Containers[0].Resources.Requests.Memory().Value()
					podsOn = append(podsOn, p)
				}
				if cpu > node.Status.Allocatable.Cpu().MilliValue() || mem > node.Status.Allocatable.Memory().Value() {
					t.Errorf("node %s over capacity: cpu %d/%d, memory %d/%d", node.Name, cpu, node.Status.Allocatable.Cpu().MilliValue(), mem, node.Status.Allocatable.Memory().Value())
				}
				// Rebuilding the node from its pods' annotations alone fails
				// on any GPU above 1000 milli or device held twice.
				if s := kube.NodeGPUState(node, nil); s != nil {
					for _, p := range podsOn {
						if err := addAnnotated(s, p); err != nil {
							t.Errorf("node %s: %v", node.Name, err)
						}
					}
				}
			}
		})
	}
}

// TestReplayReproducible: the same seed places every pod on the same node
// twice in a row, so differences between runs and profiles are the
// policies', not chance (the snapshot lists nodes in map order, which once
// made equal scores break differently from run to run).
func TestReplayReproducible(t *testing.T) {
	nodes, pods := loadTrace(t, "openb_pod_list_default.csv")
	var slice []NodeRow
	for i := 0; i < len(nodes); i += 30 {
		slice = append(slice, nodes[i])
	}
	placements := func() map[string]string {
		var sim *Simulator
		if _, err := runWith(context.Background(), Options{Nodes: slice, Pods: pods, Seeds: []int64{7}, Inflate: 1.3, Profile: ProfileTessera}, &sim); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, ni := range sim.NodeInfos() {
			for _, pi := range ni.GetPods() {
				out[pi.GetPod().Name] = ni.Node().Name
			}
		}
		return out
	}
	a, b := placements(), placements()
	if len(a) == 0 {
		t.Fatal("nothing placed")
	}
	diff := 0
	for name, node := range a {
		if b[name] != node {
			diff++
		}
	}
	if diff > 0 || len(a) != len(b) {
		t.Errorf("same seed, different placements: %d of %d pods moved (%d vs %d placed)", diff, len(a), len(a), len(b))
	}
}

// TestProfilesScoring: the tessera profile is the shipped one (GPUPlacement
// scores; CPU/memory spreading does not), the baseline is upstream's default
// scoring (NodeResourcesFit and BalancedAllocation score; GPUPlacement does
// not), so that the replay's comparison is exactly the placement policy.
func TestProfilesScoring(t *testing.T) {
	nodes, _ := loadTrace(t, "openb_pod_list_default.csv")
	want := map[Profile]map[string]bool{
		ProfileTessera:  {"GPUPlacement": true, "NodeResourcesFit": false, "NodeResourcesBalancedAllocation": false},
		ProfileBaseline: {"GPUPlacement": false, "NodeResourcesFit": true, "NodeResourcesBalancedAllocation": true},
	}
	for profile, plugins := range want {
		sim, err := NewSimulator(context.Background(), profile, []*v1.Node{nodes[0].Node()}, 1)
		if err != nil {
			t.Fatal(err)
		}
		scoring := map[string]bool{}
		for _, pl := range sim.fw.ListPlugins().Score.Enabled {
			scoring[pl.Name] = true
		}
		for name, on := range plugins {
			if scoring[name] != on {
				t.Errorf("profile %s: %s scores = %v, want %v (score plugins %v)", profile, name, scoring[name], on, scoring)
			}
		}
	}
}

// TestRareGPUModelKeptForLimitedPods runs the real framework and plugins:
// one small node of a rare GPU model (T4, 2 GPUs) and four 8-GPU nodes, one
// of them taken by an 8-GPU pod and one T4 GPU by a pod limited to T4. A pod
// that may run anywhere must not take the last T4 GPU while 8-GPU nodes
// have room: the next pod limited to T4 would find none. (Plain FGD takes
// it: that node could never host an 8-GPU pod anyway.)
func TestRareGPUModelKeptForLimitedPods(t *testing.T) {
	ctx := context.Background()
	nodes := []*v1.Node{NodeRow{Name: "t4-0", CPUMilli: 104000, MemoryMiB: 512 << 10, GPUs: 2, Model: "T4"}.Node()}
	for i := 0; i < 4; i++ {
		nodes = append(nodes, NodeRow{Name: fmt.Sprintf("g2-%d", i), CPUMilli: 96000, MemoryMiB: 384 << 10, GPUs: 8, Model: "G2"}.Node())
	}
	sim, err := NewSimulator(ctx, ProfileTessera, nodes, 1)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		pod      PodRow
		wantNode func(string) bool
	}{
		{PodRow{Name: "big", CPUMilli: 32000, MemoryMiB: 64 << 10, NumGPU: 8, GPUMilli: 1000}, func(n string) bool { return strings.HasPrefix(n, "g2-") }},
		{PodRow{Name: "t4-a", CPUMilli: 8000, MemoryMiB: 16 << 10, NumGPU: 1, GPUMilli: 1000, GPUSpec: []string{"T4"}}, func(n string) bool { return n == "t4-0" }},
		{PodRow{Name: "any", CPUMilli: 8000, MemoryMiB: 16 << 10, NumGPU: 1, GPUMilli: 1000}, func(n string) bool { return strings.HasPrefix(n, "g2-") }},
		{PodRow{Name: "t4-b", CPUMilli: 8000, MemoryMiB: 16 << 10, NumGPU: 1, GPUMilli: 1000, GPUSpec: []string{"T4"}}, func(n string) bool { return n == "t4-0" }},
	}
	for _, s := range steps {
		node, err := sim.Schedule(ctx, s.pod.Pod(s.pod.Name))
		if err != nil {
			t.Fatal(err)
		}
		if !s.wantNode(node) {
			t.Fatalf("pod %s placed on %q", s.pod.Name, node)
		}
	}
}

// checkBreakdown checks that a breakdown accounts for every GPU: allocated
// plus free on partly used GPUs plus idle GPUs is the whole capacity, its
// gaps add up to the partly used free capacity, and what was dropped is
// what arrived but was not allocated.
func checkBreakdown(t *testing.T, gpus int, b *Breakdown) {
	t.Helper()
	if b == nil {
		t.Fatal("no breakdown at arrived = 100%")
	}
	if b.Arrived < 100 || b.Arrived > 110 {
		t.Errorf("breakdown taken at arrived %.2f%%, want the first arrival at or above 100%%", b.Arrived)
	}
	idle := float64(b.IdleGPUs) * 100 / float64(gpus)
	if sum := b.Allocated + b.PartlyUsedFree + idle; math.Abs(sum-100) > 1e-6 {
		t.Errorf("allocated %.3f%% + free on partly used GPUs %.3f%% + idle %.3f%% = %.3f%%, want 100%%", b.Allocated, b.PartlyUsedFree, idle, sum)
	}
	var gaps int64
	for _, g := range b.Gaps {
		if g.FreeMilli <= 0 || g.FreeMilli >= 1000 || g.GPUs <= 0 {
			t.Errorf("gap %+v: want 0 < free < 1000 on at least one GPU", g)
		}
		gaps += g.FreeMilli * int64(g.GPUs)
	}
	if got := float64(gaps) * 100 / float64(gpus*1000); math.Abs(got-b.PartlyUsedFree) > 1e-6 {
		t.Errorf("gaps hold %.3f%%, free on partly used GPUs is %.3f%%", got, b.PartlyUsedFree)
	}
	dropped := 0.0
	for _, d := range b.Dropped {
		dropped += d.GPU
	}
	if math.Abs(dropped-(b.Arrived-b.Allocated)) > 1e-6 {
		t.Errorf("dropped %.3f%% of GPU capacity, but arrived %.3f%% - allocated %.3f%% = %.3f%%", dropped, b.Arrived, b.Allocated, b.Arrived-b.Allocated)
	}
	if b.IdleGPUsStranded > b.IdleGPUs {
		t.Errorf("%d stranded of %d idle GPUs", b.IdleGPUsStranded, b.IdleGPUs)
	}
}
