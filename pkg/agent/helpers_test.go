package agent

import (
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/tessera-sched/tessera/pkg/agent/nvmltest"
	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// stubbed prepares one of NVIDIA's mocked systems for Discover; see
// nvmltest.Stub.
func stubbed(s *server.Server) *server.Server {
	return nvmltest.Stub(s)
}

// mockDevice returns the mock's i-th device.
func mockDevice(s *server.Server, i int) *server.Device {
	return s.Devices[i].(*server.Device)
}

// indexOf returns the position of d among s's devices, for pairwise mocks
// such as GetP2PStatus that receive the peer as an nvml.Device.
func indexOf(t *testing.T, s *server.Server, d nvml.Device) int {
	t.Helper()
	for i, x := range s.Devices {
		if x == d {
			return i
		}
	}
	t.Fatalf("device %v is not one of the mock's", d)
	return -1
}

// pairwise makes every device of s answer GetP2PStatus (NVLink) and
// GetTopologyCommonAncestor from the given functions of two device
// positions; nil leaves the stub's ERROR_NOT_SUPPORTED.
func pairwise(t *testing.T, s *server.Server, nvlink func(a, b int) bool, ancestor func(a, b int) nvml.GpuTopologyLevel) {
	for i := range s.Devices {
		dev := mockDevice(s, i)
		if nvlink != nil {
			dev.GetP2PStatusFunc = func(peer nvml.Device, caps nvml.GpuP2PCapsIndex) (nvml.GpuP2PStatus, nvml.Return) {
				if caps != nvml.P2P_CAPS_INDEX_NVLINK {
					t.Errorf("GetP2PStatus asked for capability %d, want NVLink", caps)
				}
				if nvlink(i, indexOf(t, s, peer)) {
					return nvml.P2P_STATUS_OK, nvml.SUCCESS
				}
				return nvml.P2P_STATUS_NOT_SUPPORTED, nvml.SUCCESS
			}
		}
		if ancestor != nil {
			dev.GetTopologyCommonAncestorFunc = func(peer nvml.Device) (nvml.GpuTopologyLevel, nvml.Return) {
				return ancestor(i, indexOf(t, s, peer)), nvml.SUCCESS
			}
		}
	}
}

// int32p returns a pointer to v, for expected NUMA nodes.
func int32p(v int32) *int32 { return &v }

// field extracts one string field of every GPU, for compact expectations.
func field(spec tesserav1alpha1.NodeGPUTopologySpec, f func(tesserav1alpha1.GPUDevice) string) []string {
	out := make([]string, len(spec.GPUs))
	for i, g := range spec.GPUs {
		out[i] = f(g)
	}
	return out
}
