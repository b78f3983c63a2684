package v1alpha1

import (
	"strings"
	"testing"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

func TestTopologyFromObject(t *testing.T) {
	numa := func(n int32) *int32 { return &n }
	obj := &NodeGPUTopology{Spec: NodeGPUTopologySpec{GPUs: []GPUDevice{
		{Index: 1, UUID: "GPU-b", Product: "NVIDIA-H100-80GB-HBM3", NUMANode: numa(1), NVLinkDomain: "clique-7"},
		{Index: 0, UUID: "GPU-a", Product: "NVIDIA-H100-80GB-HBM3", NUMANode: numa(0), NVLinkDomain: "clique-7",
			MIG: &MIGConfig{Mode: MIGDynamic, Instances: []MIGInstance{{Profile: "3g.40gb", Start: 4}}}},
	}}}
	topo, err := obj.Spec.Topology()
	if err != nil {
		t.Fatal(err)
	}
	if topo.GPUs[0].Index != 0 || topo.GPUs[0].MIG != gpu.MIGDynamic || topo.GPUs[0].Instances[0].Start != 4 || topo.GPUs[1].NUMANode != 1 || topo.GPUs[1].Domain != "clique-7" {
		t.Errorf("unexpected conversion: %+v", topo)
	}

	obj.Spec.GPUs[1].MIG.Instances = append(obj.Spec.GPUs[1].MIG.Instances, MIGInstance{Profile: "4g.40gb", Start: 0})
	obj.Spec.GPUs[1].MIG.Instances = append(obj.Spec.GPUs[1].MIG.Instances, MIGInstance{Profile: "3g.40gb", Start: 0})
	if _, err := obj.Spec.Topology(); err == nil {
		t.Error("overlapping MIG instances accepted")
	}
	obj.Spec.GPUs[1].MIG = &MIGConfig{Mode: "Sometimes"}
	if _, err := obj.Spec.Topology(); err == nil || !strings.Contains(err.Error(), "Sometimes") {
		t.Errorf("bad mode: error %v", err)
	}
}
