package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"k8s.io/component-base/version"
	"sigs.k8s.io/yaml"

	"github.com/tessera-sched/tessera/pkg/agent/nvmltest"
	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// twoGPUServer is a mocked node with two NVLinked H100s behind one PCIe
// switch on NUMA node 1, the second partitioned into two 3g.40gb instances,
// with fixed UUIDs so that the output is reproducible.
func twoGPUServer(t *testing.T) *server.Server {
	s := nvmltest.Stub(dgxh100.NewWithGPUs(gpus.H100_SXM5_80GB, gpus.H100_SXM5_80GB))
	for i, d := range s.Devices {
		dev := d.(*server.Device)
		dev.UUID = fmt.Sprintf("GPU-00000000-0000-0000-0000-00000000000%d", i)
		dev.GetNumaNodeIdFunc = func() (int, nvml.Return) { return 1, nvml.SUCCESS }
		dev.GetP2PStatusFunc = func(nvml.Device, nvml.GpuP2PCapsIndex) (nvml.GpuP2PStatus, nvml.Return) {
			return nvml.P2P_STATUS_OK, nvml.SUCCESS
		}
		dev.GetTopologyCommonAncestorFunc = func(nvml.Device) (nvml.GpuTopologyLevel, nvml.Return) {
			return nvml.TOPOLOGY_SINGLE, nvml.SUCCESS
		}
	}
	dev := s.Devices[1].(*server.Device)
	dev.SetMigMode(nvml.DEVICE_MIG_ENABLE)
	info, _ := dev.GetGpuInstanceProfileInfo(nvml.GPU_INSTANCE_PROFILE_3_SLICE)
	for _, start := range []uint32{4, 0} {
		if _, ret := dev.CreateGpuInstanceWithPlacement(&info, &nvml.GpuInstancePlacement{Start: start, Size: 4}); ret != nvml.SUCCESS {
			t.Fatalf("creating a MIG instance: %v", ret)
		}
	}
	return s
}

// wantPrint is --print's output for twoGPUServer. It pins the format that
// the help text documents: comment lines, then the object with sorted keys.
const wantPrint = `# tessera-agent %[1]s
# driver 550.54.15, NVML 12.550.54.15, CUDA 12.4
apiVersion: tessera.dev/v1alpha1
kind: NodeGPUTopology
metadata:
  labels:
    app.kubernetes.io/managed-by: tessera-agent
  name: gpu-node-7
spec:
  gpus:
  - index: 0
    memoryMiB: 81920
    mig:
      mode: Disabled
    numaNode: 1
    nvlinkDomain: nvlink-0
    pciBusID: "0000:00:00.0"
    pcieSwitch: pcie-0
    product: NVIDIA-H100-80GB-HBM3
    uuid: GPU-00000000-0000-0000-0000-000000000000
  - index: 1
    memoryMiB: 81920
    mig:
      instances:
      - profile: 3g.40gb
        start: 0
      - profile: 3g.40gb
        start: 4
      mode: %[2]s
    numaNode: 1
    nvlinkDomain: nvlink-0
    pciBusID: "0000:01:00.0"
    pcieSwitch: pcie-0
    product: NVIDIA-H100-80GB-HBM3
    uuid: GPU-00000000-0000-0000-0000-000000000001
status:
  agentVersion: %[1]s
  driverVersion: 550.54.15
  gpuCount: 2
  lastChecked: "2026-05-01T12:00:00Z"
  product: NVIDIA-H100-80GB-HBM3
`

// TestPrint runs --print on a mocked node and compares the whole output,
// then checks that it decodes as the NodeGPUTopology it claims to be.
func TestPrint(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      string
		wantMode tesserav1alpha1.MIGMode
	}{
		{name: "defaults, node name from NODE_NAME", env: "gpu-node-7", args: []string{"--print"}, wantMode: tesserav1alpha1.MIGStatic},
		{name: "dynamic MIG layout, --node-name", args: []string{"--print", "--mig-layout=dynamic", "--node-name=gpu-node-7"}, wantMode: tesserav1alpha1.MIGDynamic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NODE_NAME", tc.env)
			d := deps{
				newNVML:   func(string) nvml.Interface { return twoGPUServer(t) },
				newClient: noCluster(t),
				hostname:  func() (string, error) { return "not-the-node-name", nil },
				now:       func() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) },
			}
			out, err := execute(t, d, tc.args...)
			if err != nil {
				t.Fatalf("--print: %v", err)
			}
			if want := fmt.Sprintf(wantPrint, version.Get().GitVersion, tc.wantMode); out != want {
				t.Errorf("--print output:\n%s\nwant:\n%s", out, want)
			}
			var obj tesserav1alpha1.NodeGPUTopology
			if err := yaml.UnmarshalStrict([]byte(out), &obj); err != nil {
				t.Fatalf("output does not decode as a NodeGPUTopology: %v", err)
			}
			if obj.Name != "gpu-node-7" || len(obj.Spec.GPUs) != 2 {
				t.Errorf("decoded %q with %d GPUs", obj.Name, len(obj.Spec.GPUs))
			}
		})
	}
}

// TestPrintFailures checks that --print fails, plainly, when there is
// nothing right to print, and still shows a rejected topology.
func TestPrintFailures(t *testing.T) {
	tests := []struct {
		name      string
		lib       func(t *testing.T) nvml.Interface
		wantErr   string
		wantPrint bool
	}{
		{
			name: "no GPUs",
			lib: func(t *testing.T) nvml.Interface {
				s := nvmltest.Stub(dgxh100.NewWithGPUs())
				return s
			},
			wantErr: "found no GPUs",
		},
		{
			name: "driver not loaded",
			lib: func(t *testing.T) nvml.Interface {
				s := twoGPUServer(t)
				s.InitFunc = func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }
				return s
			},
			wantErr: "Is the NVIDIA driver installed and is this a GPU node?",
		},
		{
			name: "discovery fails",
			lib: func(t *testing.T) nvml.Interface {
				s := twoGPUServer(t)
				s.Devices[0].(*server.Device).GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
				return s
			},
			wantErr: "discovering GPUs",
		},
		{
			name: "topology the scheduler would reject",
			lib: func(t *testing.T) nvml.Interface {
				s := twoGPUServer(t)
				s.Devices[1].(*server.Device).UUID = s.Devices[0].(*server.Device).UUID
				return s
			},
			wantErr:   "the scheduler would reject",
			wantPrint: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := deps{
				newNVML:   func(string) nvml.Interface { return tc.lib(t) },
				newClient: noCluster(t),
				hostname:  func() (string, error) { return "node", nil },
				now:       time.Now,
			}
			out, err := execute(t, d, "--print")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
			if printed := strings.Contains(out, "kind: NodeGPUTopology"); printed != tc.wantPrint {
				t.Errorf("printed the object: %v, want %v\n%s", printed, tc.wantPrint, out)
			}
		})
	}
}
