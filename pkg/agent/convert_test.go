package agent

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/gpu"
)

// TestRoundTrip publishes a discovered topology the way the agent does
// (object -> unstructured -> JSON), reads it back the way the scheduler
// does (JSON -> NodeGPUTopology -> gpu.Topology) and checks that the
// scheduler sees exactly the hardware that was mocked.
func TestRoundTrip(t *testing.T) {
	s := stubbed(dgxh100.New())
	pairwise(t, s, func(a, b int) bool { return a/4 == b/4 }, levels(func(a, b int) bool { return a/2 == b/2 }, nvml.TOPOLOGY_SINGLE, nvml.TOPOLOGY_SYSTEM))
	for i := range s.Devices {
		mockDevice(s, i).GetNumaNodeIdFunc = func() (int, nvml.Return) { return i / 4, nvml.SUCCESS }
	}
	withMIG(t, s, gi{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 4, 4}, gi{nvml.GPU_INSTANCE_PROFILE_1_SLICE, 0, 1})

	spec, info, err := Discover(s, Options{HostFS: fstest.MapFS{}})
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	u, err := ToUnstructured(NewObject("gpu-node-1", spec, info, "v0.1.0", metav1.Now()))
	if err != nil {
		t.Fatalf("ToUnstructured: %v", err)
	}
	raw, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	var read tesserav1alpha1.NodeGPUTopology
	if err := json.Unmarshal(raw, &read); err != nil {
		t.Fatalf("the published JSON does not decode: %v\n%s", err, raw)
	}
	if read.Name != "gpu-node-1" || read.Kind != "NodeGPUTopology" || read.APIVersion != "tessera.dev/v1alpha1" {
		t.Errorf("object is %s %s named %q", read.APIVersion, read.Kind, read.Name)
	}
	if read.Status.GPUCount != 8 || read.Status.Product != "NVIDIA-H100-80GB-HBM3" || read.Status.DriverVersion != "550.54.15" || read.Status.AgentVersion != "v0.1.0" {
		t.Errorf("status %+v", read.Status)
	}
	topo, err := read.Spec.Topology()
	if err != nil {
		t.Fatalf("the scheduler would reject the topology: %v", err)
	}
	if len(topo.GPUs) != 8 {
		t.Fatalf("scheduler sees %d GPUs, want 8", len(topo.GPUs))
	}
	for i, g := range topo.GPUs {
		want := gpu.GPU{
			Index:      i,
			UUID:       mockDevice(s, i).UUID,
			Product:    "NVIDIA-H100-80GB-HBM3",
			MemoryMiB:  81920,
			NUMANode:   i / 4,
			Domain:     "nvlink-" + string(rune('0'+i/4*4)),
			PCIeSwitch: "pcie-" + string(rune('0'+i/2*2)),
		}
		if i == 0 {
			want.MIG = gpu.MIGStatic
			want.Instances = []gpu.MIGInstance{{Profile: "1g.10gb", Start: 0}, {Profile: "3g.40gb", Start: 4}}
		}
		if !reflect.DeepEqual(g, want) {
			t.Errorf("scheduler sees GPU %d as\n%+v\nwant\n%+v", i, g, want)
		}
	}
}

// TestTopologyRejects checks that specs the scheduler would refuse are
// refused by the agent too, so that it never publishes them.
func TestTopologyRejects(t *testing.T) {
	h100 := func(index int32, mig *tesserav1alpha1.MIGConfig) tesserav1alpha1.GPUDevice {
		return tesserav1alpha1.GPUDevice{Index: index, Product: "NVIDIA-H100-80GB-HBM3", MIG: mig}
	}
	tests := []struct {
		name    string
		gpus    []tesserav1alpha1.GPUDevice
		wantErr string
	}{
		{
			name:    "unknown MIG mode",
			gpus:    []tesserav1alpha1.GPUDevice{h100(0, &tesserav1alpha1.MIGConfig{Mode: "Auto"})},
			wantErr: "unsupported value",
		},
		{
			name:    "duplicate index",
			gpus:    []tesserav1alpha1.GPUDevice{h100(0, nil), h100(0, nil)},
			wantErr: "listed twice",
		},
		{
			name: "overlapping instances",
			gpus: []tesserav1alpha1.GPUDevice{h100(0, &tesserav1alpha1.MIGConfig{Mode: tesserav1alpha1.MIGStatic, Instances: []tesserav1alpha1.MIGInstance{
				{Profile: "3g.40gb", Start: 0}, {Profile: "2g.20gb", Start: 2},
			}})},
			wantErr: "overlaps",
		},
		{
			name: "profile the product lacks",
			gpus: []tesserav1alpha1.GPUDevice{h100(0, &tesserav1alpha1.MIGConfig{Mode: tesserav1alpha1.MIGStatic, Instances: []tesserav1alpha1.MIGInstance{
				{Profile: "3g.20gb", Start: 0},
			}})},
			wantErr: "not offered",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tesserav1alpha1.NodeGPUTopologySpec{GPUs: tc.gpus}.Topology()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Topology error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
