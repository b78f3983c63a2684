package agent

import (
	"errors"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/tessera-sched/tessera/pkg/agent/nvmltest"
	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// TestDiscoverLinks injects NVLink, fabric and PCIe topologies into a mocked
// DGX H100 and checks the domain and switch names Discover derives.
func TestDiscoverLinks(t *testing.T) {
	sameHalf := func(a, b int) bool { return a/4 == b/4 }
	pairs := func(a, b int) bool { return a/2 == b/2 }
	all := func(a, b int) bool { return true }
	clusterUUID := [16]uint8{0x6c, 0x9a, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1}
	const clique = "clique-6c9a0000-0000-4000-8000-000000000001-7"
	fabric := func(state uint8, status nvml.Return, uuid [16]uint8) func(*server.Device) {
		return func(d *server.Device) {
			d.GetGpuFabricInfoFunc = func() (nvml.GpuFabricInfo, nvml.Return) {
				return nvml.GpuFabricInfo{State: state, Status: uint32(status), ClusterUuid: uuid, CliqueId: 7}, nvml.SUCCESS
			}
		}
	}
	tests := []struct {
		name         string
		nvlink       func(a, b int) bool
		ancestor     func(a, b int) nvml.GpuTopologyLevel
		fabric       func(*server.Device) // applied to GPUs 0-3
		wantNVLink   []string
		wantSwitches []string
	}{
		{
			name:         "two 4-GPU NVLink cliques, GPUs paired behind PCIe switches",
			nvlink:       sameHalf,
			ancestor:     levels(pairs, nvml.TOPOLOGY_SINGLE, nvml.TOPOLOGY_SYSTEM),
			wantNVLink:   []string{"nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-4", "nvlink-4", "nvlink-4", "nvlink-4"},
			wantSwitches: []string{"pcie-0", "pcie-0", "pcie-2", "pcie-2", "pcie-4", "pcie-4", "pcie-6", "pcie-6"},
		},
		{
			name:         "NVSwitch board, switch chains per half",
			nvlink:       all,
			ancestor:     levels(sameHalf, nvml.TOPOLOGY_MULTIPLE, nvml.TOPOLOGY_NODE),
			wantNVLink:   []string{"nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0"},
			wantSwitches: []string{"pcie-0", "pcie-0", "pcie-0", "pcie-0", "pcie-4", "pcie-4", "pcie-4", "pcie-4"},
		},
		{
			name:         "NVL bridge pairs, no shared PCIe switches",
			nvlink:       pairs,
			ancestor:     levels(all, nvml.TOPOLOGY_HOSTBRIDGE, nvml.TOPOLOGY_HOSTBRIDGE),
			wantNVLink:   []string{"nvlink-0", "nvlink-0", "nvlink-2", "nvlink-2", "nvlink-4", "nvlink-4", "nvlink-6", "nvlink-6"},
			wantSwitches: []string{"", "", "", "", "", "", "", ""},
		},
		{
			name:         "PCIe only",
			nvlink:       func(a, b int) bool { return false },
			wantNVLink:   []string{"", "", "", "", "", "", "", ""},
			wantSwitches: []string{"", "", "", "", "", "", "", ""},
		},
		{
			name:         "fabric clique on GPUs 0-3, NVLink P2P among the rest",
			nvlink:       all,
			fabric:       fabric(nvml.GPU_FABRIC_STATE_COMPLETED, nvml.SUCCESS, clusterUUID),
			wantNVLink:   []string{clique, clique, clique, clique, "nvlink-4", "nvlink-4", "nvlink-4", "nvlink-4"},
			wantSwitches: []string{"", "", "", "", "", "", "", ""},
		},
		{
			name:         "fabric registration in progress: P2P decides",
			nvlink:       sameHalf,
			fabric:       fabric(nvml.GPU_FABRIC_STATE_IN_PROGRESS, nvml.SUCCESS, clusterUUID),
			wantNVLink:   []string{"nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-4", "nvlink-4", "nvlink-4", "nvlink-4"},
			wantSwitches: []string{"", "", "", "", "", "", "", ""},
		},
		{
			name:         "fabric without a cluster UUID (single-node NVSwitch): P2P decides",
			nvlink:       all,
			fabric:       fabric(nvml.GPU_FABRIC_STATE_COMPLETED, nvml.SUCCESS, [16]uint8{}),
			wantNVLink:   []string{"nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0"},
			wantSwitches: []string{"", "", "", "", "", "", "", ""},
		},
		{
			name:         "fabric registration failed: P2P decides",
			nvlink:       sameHalf,
			fabric:       fabric(nvml.GPU_FABRIC_STATE_COMPLETED, nvml.ERROR_UNKNOWN, clusterUUID),
			wantNVLink:   []string{"nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0", "nvlink-4", "nvlink-4", "nvlink-4", "nvlink-4"},
			wantSwitches: []string{"", "", "", "", "", "", "", ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stubbed(dgxh100.New())
			pairwise(t, s, tc.nvlink, tc.ancestor)
			if tc.fabric != nil {
				for i := 0; i < 4; i++ {
					tc.fabric(mockDevice(s, i))
				}
			}
			spec, _, err := Discover(s, Options{HostFS: fstest.MapFS{}})
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if got := field(spec, func(g tesserav1alpha1.GPUDevice) string { return g.NVLinkDomain }); !reflect.DeepEqual(got, tc.wantNVLink) {
				t.Errorf("NVLink domains %q, want %q", got, tc.wantNVLink)
			}
			if got := field(spec, func(g tesserav1alpha1.GPUDevice) string { return g.PCIeSwitch }); !reflect.DeepEqual(got, tc.wantSwitches) {
				t.Errorf("PCIe switches %q, want %q", got, tc.wantSwitches)
			}
			topo, err := spec.Topology()
			if err != nil {
				t.Fatalf("the scheduler would reject the topology: %v", err)
			}
			for i, g := range topo.GPUs {
				if g.Domain != tc.wantNVLink[i] || g.PCIeSwitch != tc.wantSwitches[i] {
					t.Errorf("scheduler sees GPU %d in domain %q behind switch %q", i, g.Domain, g.PCIeSwitch)
				}
			}
		})
	}
}

// levels answers near for pairs that pred accepts and far for the others.
func levels(pred func(a, b int) bool, near, far nvml.GpuTopologyLevel) func(a, b int) nvml.GpuTopologyLevel {
	return func(a, b int) nvml.GpuTopologyLevel {
		if pred(a, b) {
			return near
		}
		return far
	}
}

// TestFabricSymbols checks which fabric query Discover uses: the V call when
// the driver has it (not callable on mocks, so only its absence is tested),
// the old one otherwise, neither when both are missing (pre-R525 drivers),
// where calling them would crash the agent.
func TestFabricSymbols(t *testing.T) {
	if nvmltest.SymbolFabricInfoV != symbolFabricInfoV {
		t.Fatalf("nvmltest stubs out %q, but discovery looks up %q", nvmltest.SymbolFabricInfoV, symbolFabricInfoV)
	}
	tests := []struct {
		name       string
		missing    map[string]bool
		wantCalled bool
	}{
		{name: "old fabric call present", missing: map[string]bool{symbolFabricInfoV: true}, wantCalled: true},
		{name: "no fabric calls", missing: map[string]bool{symbolFabricInfoV: true, symbolFabricInfo: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stubbed(dgxh100.New())
			s.LookupSymbolFunc = func(name string) error {
				if tc.missing[name] {
					return errors.New("missing")
				}
				return nil
			}
			called := false
			for i := range s.Devices {
				mockDevice(s, i).GetGpuFabricInfoFunc = func() (nvml.GpuFabricInfo, nvml.Return) {
					called = true
					return nvml.GpuFabricInfo{}, nvml.ERROR_NOT_SUPPORTED
				}
			}
			if _, _, err := Discover(s, Options{HostFS: fstest.MapFS{}}); err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if called != tc.wantCalled {
				t.Errorf("GetGpuFabricInfo called: %v, want %v", called, tc.wantCalled)
			}
		})
	}
}

// TestLinkErrors checks that unexpected NVML failures of the pairwise link
// queries cost only the hint: no domain or switch, no failed discovery.
func TestLinkErrors(t *testing.T) {
	s := stubbed(dgxh100.New())
	for i := range s.Devices {
		d := mockDevice(s, i)
		d.GetP2PStatusFunc = func(nvml.Device, nvml.GpuP2PCapsIndex) (nvml.GpuP2PStatus, nvml.Return) {
			return 0, nvml.ERROR_UNKNOWN
		}
		d.GetTopologyCommonAncestorFunc = func(nvml.Device) (nvml.GpuTopologyLevel, nvml.Return) {
			return 0, nvml.ERROR_UNKNOWN
		}
	}
	spec, _, err := Discover(s, Options{HostFS: fstest.MapFS{}})
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	for _, g := range spec.GPUs {
		if g.NVLinkDomain != "" || g.PCIeSwitch != "" {
			t.Errorf("GPU %d: NVLink %q, PCIe %q; want unknown", g.Index, g.NVLinkDomain, g.PCIeSwitch)
		}
	}
}
