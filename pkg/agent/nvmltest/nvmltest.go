// Package nvmltest prepares NVIDIA's mocked NVML systems
// (github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgx*) for tessera-agent's tests.
//
// The mocks implement device enumeration, names, memory and MIG, but panic
// on every other call. Stub makes the calls that discovery makes answer
// ERROR_NOT_SUPPORTED ("unknown") so that a test only sets the functions it
// is about, and it is shared so that the agent's and the command's tests
// start from the same mocked hardware.
package nvmltest

import (
	"errors"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// SymbolFabricInfoV is the NVML function that Stub reports missing: go-nvml's
// handler for it (Device.GetGpuFabricInfoV().V2()) calls the C library
// directly, so it cannot be mocked, and discovery must fall back to
// nvmlDeviceGetGpuFabricInfo, which can.
const SymbolFabricInfoV = "nvmlDeviceGetGpuFabricInfoV"

// Stub prepares s for discovery and returns it: GetPciInfo answers the
// mock's bus ID in NVML's spelling ("00000000:07:00.0"); GetNumaNodeId,
// GetGpuFabricInfo, GetP2PStatus, GetTopologyCommonAncestor and
// GetMaxMigDeviceCount answer ERROR_NOT_SUPPORTED; and LookupSymbol reports
// SymbolFabricInfoV missing.
func Stub(s *server.Server) *server.Server {
	s.LookupSymbolFunc = func(name string) error {
		if name == SymbolFabricInfoV {
			return errors.New("not in the mock")
		}
		return nil
	}
	for _, d := range s.Devices {
		dev := d.(*server.Device)
		dev.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
			return PCIInfo("0000" + strings.ToUpper(dev.PciBusID)), nvml.SUCCESS
		}
		dev.GetNumaNodeIdFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		dev.GetGpuFabricInfoFunc = func() (nvml.GpuFabricInfo, nvml.Return) {
			return nvml.GpuFabricInfo{}, nvml.ERROR_NOT_SUPPORTED
		}
		dev.GetP2PStatusFunc = func(nvml.Device, nvml.GpuP2PCapsIndex) (nvml.GpuP2PStatus, nvml.Return) {
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		dev.GetTopologyCommonAncestorFunc = func(nvml.Device) (nvml.GpuTopologyLevel, nvml.Return) {
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		dev.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	}
	return s
}

// PCIInfo returns NVML PCI info whose BusId is busID.
func PCIInfo(busID string) nvml.PciInfo {
	var p nvml.PciInfo
	for i := 0; i < len(busID) && i < len(p.BusId)-1; i++ {
		p.BusId[i] = int8(busID[i])
	}
	return p
}
