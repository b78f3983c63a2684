package kube

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

func gpuNode(name string, labels map[string]string, capacity map[v1.ResourceName]string) *v1.Node {
	w := st.MakeNode().Name(name).Capacity(capacity)
	for k, v := range labels {
		w = w.Label(k, v)
	}
	return w.Obj()
}

func TestTopologyFromLabels(t *testing.T) {
	tests := []struct {
		name          string
		node          *v1.Node
		wantOK        bool
		wantGPUs      int
		wantMIG       map[string]int
		wantDomain    string
		wantSingle    string
		wantMIGStatic int
	}{
		{
			name:   "CPU node",
			node:   gpuNode("cpu", nil, map[v1.ResourceName]string{v1.ResourceCPU: "8"}),
			wantOK: false,
		},
		{
			name:       "8 x H100 SXM: one NVSwitch domain",
			node:       gpuNode("h100", map[string]string{LabelProduct: "NVIDIA-H100-80GB-HBM3"}, map[v1.ResourceName]string{ResourceGPU: "8"}),
			wantOK:     true,
			wantGPUs:   8,
			wantDomain: "nvswitch-0",
		},
		{
			name:     "unknown product counts as plain GPUs",
			node:     gpuNode("t4", map[string]string{LabelProduct: "T4"}, map[v1.ResourceName]string{ResourceGPU: "2"}),
			wantOK:   true,
			wantGPUs: 2,
		},
		{
			name: "mixed strategy: 2 whole GPUs and MIG instances",
			node: gpuNode("mig", map[string]string{LabelProduct: "NVIDIA-A100-SXM4-80GB", LabelMIGStrategy: "mixed"},
				map[v1.ResourceName]string{ResourceGPU: "2", "nvidia.com/mig-3g.40gb": "2", "nvidia.com/mig-1g.10gb": "7"}),
			wantOK:        true,
			wantGPUs:      4,
			wantMIG:       map[string]int{"3g.40gb": 2, "1g.10gb": 7},
			wantMIGStatic: 2,
		},
		{
			name: "mixed strategy with gpu.count: the same layout on every GPU",
			node: gpuNode("uniform", map[string]string{LabelProduct: "NVIDIA-A100-SXM4-80GB", LabelMIGStrategy: "mixed", LabelGPUCount: "8"},
				map[v1.ResourceName]string{"nvidia.com/mig-3g.40gb": "8", "nvidia.com/mig-2g.20gb": "8", "nvidia.com/mig-1g.10gb": "16"}),
			wantOK:        true,
			wantGPUs:      8,
			wantMIG:       map[string]int{"3g.40gb": 8, "2g.20gb": 8, "1g.10gb": 16},
			wantMIGStatic: 8,
		},
		{
			name: "single strategy: nvidia.com/gpu counts MIG devices",
			node: gpuNode("single", map[string]string{LabelProduct: "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", LabelMIGStrategy: "single"},
				map[v1.ResourceName]string{ResourceGPU: "14"}),
			wantOK:        true,
			wantGPUs:      2,
			wantMIG:       map[string]int{"1g.5gb": 14},
			wantSingle:    "1g.5gb",
			wantMIGStatic: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := TopologyFromLabels(tc.node)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			if err := got.Topo.Validate(); err != nil {
				t.Fatalf("derived topology invalid: %v", err)
			}
			if len(got.Topo.GPUs) != tc.wantGPUs {
				t.Errorf("%d GPUs, want %d", len(got.Topo.GPUs), tc.wantGPUs)
			}
			if got.SingleProfile != tc.wantSingle {
				t.Errorf("single profile %q, want %q", got.SingleProfile, tc.wantSingle)
			}
			mig, static := map[string]int{}, 0
			for _, g := range got.Topo.GPUs {
				if g.MIG == gpu.MIGStatic {
					static++
				}
				for _, in := range g.Instances {
					mig[in.Profile]++
				}
				if tc.wantDomain != "" && g.Domain != tc.wantDomain {
					t.Errorf("GPU %d in domain %q, want %q", g.Index, g.Domain, tc.wantDomain)
				}
			}
			if static != tc.wantMIGStatic {
				t.Errorf("%d MIG-static GPUs, want %d", static, tc.wantMIGStatic)
			}
			for p, n := range tc.wantMIG {
				if mig[p] != n {
					t.Errorf("%d instances of %s, want %d (all: %v)", mig[p], p, n, mig)
				}
			}
		})
	}
}
