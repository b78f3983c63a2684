package agent

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// TestDiscoverMockedSystems runs discovery on each of NVIDIA's mocked DGX
// systems and checks what every GPU reports, that the product comes out as
// the scheduler's catalog names it, and that the result is a topology the
// scheduler accepts.
func TestDiscoverMockedSystems(t *testing.T) {
	tests := []struct {
		name       string
		server     *server.Server
		product    string
		memoryMiB  int64
		driver     string
		catalogued bool
	}{
		{
			// The default DGX A100 mock calls its GPUs "Mock NVIDIA
			// A100-SXM4-40GB", a name no driver reports: it is published
			// in GPU Feature Discovery form and is unknown to the catalog.
			name:      "dgxa100 default mock",
			server:    dgxa100.New(),
			product:   "Mock-NVIDIA-A100-SXM4-40GB",
			memoryMiB: 40960,
			driver:    "550.54.15",
		},
		{
			name:       "dgxa100 with A100-SXM4-80GB",
			server:     dgxa100.NewWithGPUs(gpus.Multiple(8, gpus.A100_SXM4_80GB)...),
			product:    "NVIDIA-A100-SXM4-80GB",
			memoryMiB:  81920,
			driver:     "550.54.15",
			catalogued: true,
		},
		{
			name:       "dgxh100",
			server:     dgxh100.New(),
			product:    "NVIDIA-H100-80GB-HBM3",
			memoryMiB:  81920,
			driver:     "550.54.15",
			catalogued: true,
		},
		{
			// "NVIDIA H200 141GB HBM3e": matched to NVIDIA-H200 by prefix
			// and memory.
			name:       "dgxh200",
			server:     dgxh200.New(),
			product:    "NVIDIA-H200",
			memoryMiB:  144384,
			driver:     "550.54.15",
			catalogued: true,
		},
		{
			// "NVIDIA B200 180GB HBM3e": matched to NVIDIA-B200 likewise.
			name:       "dgxb200",
			server:     dgxb200.New(),
			product:    "NVIDIA-B200",
			memoryMiB:  184320,
			driver:     "560.28.03",
			catalogued: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stubbed(tc.server)
			spec, info, err := Discover(s, Options{HostFS: fstest.MapFS{}})
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if info.DriverVersion != tc.driver {
				t.Errorf("driver version %q, want %q", info.DriverVersion, tc.driver)
			}
			if got := len(spec.GPUs); got != 8 {
				t.Fatalf("%d GPUs, want 8", got)
			}
			uuids := map[string]bool{}
			for i, g := range spec.GPUs {
				if g.Index != int32(i) {
					t.Errorf("GPU %d: index %d", i, g.Index)
				}
				if g.Product != tc.product {
					t.Errorf("GPU %d: product %q, want %q", i, g.Product, tc.product)
				}
				if g.MemoryMiB != tc.memoryMiB {
					t.Errorf("GPU %d: memory %d MiB, want %d", i, g.MemoryMiB, tc.memoryMiB)
				}
				if !strings.HasPrefix(g.UUID, "GPU-") || uuids[g.UUID] {
					t.Errorf("GPU %d: UUID %q is not a fresh GPU UUID", i, g.UUID)
				}
				uuids[g.UUID] = true
				if want := mockDevice(s, i).PciBusID; g.PCIBusID != want {
					t.Errorf("GPU %d: PCI bus ID %q, want %q", i, g.PCIBusID, want)
				}
				if g.MIG == nil || g.MIG.Mode != tesserav1alpha1.MIGDisabled || len(g.MIG.Instances) != 0 {
					t.Errorf("GPU %d: MIG %+v, want mode Disabled and no instances", i, g.MIG)
				}
				// Everything the stubs answer ERROR_NOT_SUPPORTED for is
				// absent, not an error.
				if g.NUMANode != nil || g.NVLinkDomain != "" || g.PCIeSwitch != "" {
					t.Errorf("GPU %d: NUMA %v, NVLink %q, PCIe %q; want all unknown", i, g.NUMANode, g.NVLinkDomain, g.PCIeSwitch)
				}
			}
			topo, err := spec.Topology()
			if err != nil {
				t.Fatalf("the scheduler would reject the topology: %v", err)
			}
			if got := len(topo.GPUs); got != 8 {
				t.Errorf("converted topology has %d GPUs, want 8", got)
			}
		})
	}
}

// TestDiscoverNotSupported checks that every per-GPU question NVML may
// refuse with ERROR_NOT_SUPPORTED leaves its field out instead of failing
// discovery, and that failures of what the scheduler depends on do fail it.
func TestDiscoverNotSupported(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(d *server.Device)
		check   func(t *testing.T, g tesserav1alpha1.GPUDevice)
		wantErr error
	}{
		{
			name: "UUID",
			break_: func(d *server.Device) {
				d.GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_NOT_SUPPORTED }
			},
			check: func(t *testing.T, g tesserav1alpha1.GPUDevice) {
				if g.UUID != "" {
					t.Errorf("UUID %q, want none", g.UUID)
				}
			},
		},
		{
			name: "index falls back to enumeration order",
			break_: func(d *server.Device) {
				d.GetIndexFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
			},
			check: func(t *testing.T, g tesserav1alpha1.GPUDevice) {
				if g.Index != 3 {
					t.Errorf("index %d, want 3", g.Index)
				}
			},
		},
		{
			name: "memory",
			break_: func(d *server.Device) {
				d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_NOT_SUPPORTED }
			},
			check: func(t *testing.T, g tesserav1alpha1.GPUDevice) {
				if g.MemoryMiB != 0 || g.Product != "NVIDIA-H100-80GB-HBM3" {
					t.Errorf("memory %d, product %q; want 0 and the product still known", g.MemoryMiB, g.Product)
				}
			},
		},
		{
			name: "name",
			break_: func(d *server.Device) {
				d.GetNameFunc = func() (string, nvml.Return) { return "", nvml.ERROR_NOT_SUPPORTED }
			},
			check: func(t *testing.T, g tesserav1alpha1.GPUDevice) {
				if g.Product != "" {
					t.Errorf("product %q, want none", g.Product)
				}
			},
		},
		{
			name: "PCI info",
			break_: func(d *server.Device) {
				d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) { return nvml.PciInfo{}, nvml.ERROR_NOT_SUPPORTED }
			},
			check: func(t *testing.T, g tesserav1alpha1.GPUDevice) {
				if g.PCIBusID != "" || g.NUMANode != nil {
					t.Errorf("PCI bus ID %q, NUMA %v; want both unknown", g.PCIBusID, g.NUMANode)
				}
			},
		},
		{
			name: "MIG mode: not a MIG GPU",
			break_: func(d *server.Device) {
				d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_NOT_SUPPORTED }
			},
			check: func(t *testing.T, g tesserav1alpha1.GPUDevice) {
				if g.MIG != nil {
					t.Errorf("MIG %+v, want none", g.MIG)
				}
			},
		},
		{
			name: "MIG mode unreadable fails discovery",
			break_: func(d *server.Device) {
				d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_UNKNOWN }
			},
			wantErr: nvml.ERROR_UNKNOWN,
		},
		{
			name: "lost GPU fails discovery",
			break_: func(d *server.Device) {
				d.GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
			},
			wantErr: nvml.ERROR_GPU_IS_LOST,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stubbed(dgxh100.New())
			tc.break_(mockDevice(s, 3))
			spec, _, err := Discover(s, Options{HostFS: fstest.MapFS{}})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Discover error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			tc.check(t, spec.GPUs[3])
			if _, err := spec.Topology(); err != nil {
				t.Errorf("the scheduler would reject the topology: %v", err)
			}
		})
	}
}

// TestDiscoverDeviceCount checks the GPU-list failures: no GPUs is an empty
// spec (the publisher decides what to do with it), an NVML failure is an
// error.
func TestDiscoverDeviceCount(t *testing.T) {
	tests := []struct {
		name    string
		count   func() (int, nvml.Return)
		wantErr bool
	}{
		{name: "no GPUs", count: func() (int, nvml.Return) { return 0, nvml.SUCCESS }},
		{name: "count fails", count: func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stubbed(dgxh100.New())
			s.DeviceGetCountFunc = tc.count
			spec, _, err := Discover(s, Options{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Discover error %v, want error %v", err, tc.wantErr)
			}
			if len(spec.GPUs) != 0 {
				t.Errorf("%d GPUs, want 0", len(spec.GPUs))
			}
		})
	}
}
