package simulated

import (
	"testing"

	"github.com/tessera-sched/tessera/pkg/agent"
	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// TestSimulatedSystems: discovery on each simulated system finds its eight
// GPUs with stable, per-node UUIDs, two NUMA nodes, one NVLink domain and
// PCIe switches of two, and the scheduler accepts the topology.
func TestSimulatedSystems(t *testing.T) {
	for _, system := range Systems() {
		t.Run(system, func(t *testing.T) {
			spec := discover(t, system, "node-a")
			if len(spec.GPUs) != 8 {
				t.Fatalf("%d GPUs, want 8", len(spec.GPUs))
			}
			again := discover(t, system, "node-a")
			other := discover(t, system, "node-b")
			numa := map[int32]int{}
			for i, g := range spec.GPUs {
				if g.UUID != again.GPUs[i].UUID {
					t.Errorf("GPU %d: UUID %s then %s; want it stable", i, g.UUID, again.GPUs[i].UUID)
				}
				if g.UUID == other.GPUs[i].UUID {
					t.Errorf("GPU %d has the same UUID on two nodes", i)
				}
				if g.NUMANode == nil {
					t.Fatalf("GPU %d has no NUMA node", i)
				}
				numa[*g.NUMANode]++
				if g.NVLinkDomain != spec.GPUs[0].NVLinkDomain || g.NVLinkDomain == "" {
					t.Errorf("GPU %d in NVLink domain %q, want all in %q", i, g.NVLinkDomain, spec.GPUs[0].NVLinkDomain)
				}
				if g.PCIeSwitch != spec.GPUs[i/2*2].PCIeSwitch || g.PCIeSwitch == "" {
					t.Errorf("GPU %d under PCIe switch %q, want its pair's", i, g.PCIeSwitch)
				}
			}
			if numa[0] != 4 || numa[1] != 4 {
				t.Errorf("GPUs per NUMA node %v, want 4 and 4", numa)
			}
		})
	}
	if _, err := New("dgx-z9", "n"); err == nil {
		t.Error("an unknown system was accepted")
	}
}

func discover(t *testing.T, system, node string) tesserav1alpha1.NodeGPUTopologySpec {
	t.Helper()
	lib, err := New(system, node)
	if err != nil {
		t.Fatal(err)
	}
	spec, _, err := agent.Discover(lib, agent.Options{})
	if err != nil {
		t.Fatalf("discovery on simulated %s: %v", system, err)
	}
	return spec
}
