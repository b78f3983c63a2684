//go:build gpu

// This file runs only on a machine with an NVIDIA GPU and driver
// (`make test-gpu`); `make lint` type-checks it everywhere so it cannot rot.

package agent

import (
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2/ktesting"

	"github.com/tessera-sched/tessera/pkg/agent"
	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// smiGPU is one GPU as nvidia-smi reports it: an independent witness of what
// discovery through go-nvml should find.
type smiGPU struct {
	index                           int
	uuid, busID, name, migMode, drv string
	memoryMiB                       int64
}

func nvidiaSMI(t *testing.T) []smiGPU {
	t.Helper()
	out, err := exec.Command("nvidia-smi", "--query-gpu=index,uuid,pci.bus_id,name,memory.total,mig.mode.current,driver_version",
		"--format=csv,noheader,nounits").Output()
	if err != nil {
		t.Fatalf("nvidia-smi: %v", err)
	}
	r := csv.NewReader(strings.NewReader(string(out)))
	r.TrimLeadingSpace = true
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("nvidia-smi output %q: %v", out, err)
	}
	var gpus []smiGPU
	for _, row := range rows {
		if len(row) != 7 {
			t.Fatalf("nvidia-smi row %q: want 7 fields", row)
		}
		index, err := strconv.Atoi(row[0])
		if err != nil {
			t.Fatalf("nvidia-smi index %q: %v", row[0], err)
		}
		mem, err := strconv.ParseInt(row[4], 10, 64)
		if err != nil {
			t.Fatalf("nvidia-smi memory.total %q: %v", row[4], err)
		}
		gpus = append(gpus, smiGPU{index: index, uuid: row[1], busID: row[2], name: row[3], memoryMiB: mem, migMode: row[5], drv: row[6]})
	}
	return gpus
}

// TestRealGPU checks the agent end to end on a real GPU: discovery through
// the driver's libnvidia-ml agrees with nvidia-smi, the tessera-agent binary
// publishes the same topology to a real API server, and the scheduler
// assigns the GPUs by the UUIDs the agent found.
func TestRealGPU(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	lib := nvml.New()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		t.Fatalf("nvml.Init: %v: this test needs an NVIDIA GPU and driver", ret)
	}
	defer lib.Shutdown()

	spec, info, err := agent.Discover(lib, agent.Options{Logger: logger})
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	smi := nvidiaSMI(t)
	t.Logf("driver %s, NVML %s, CUDA %d; discovered %+v", info.DriverVersion, info.NVMLVersion, info.CUDADriverVersion, spec.GPUs)
	if len(spec.GPUs) != len(smi) {
		t.Fatalf("discovered %d GPUs, nvidia-smi lists %d", len(spec.GPUs), len(smi))
	}
	if info.DriverVersion != smi[0].drv {
		t.Errorf("driver version %q, nvidia-smi says %q", info.DriverVersion, smi[0].drv)
	}
	if _, err := spec.Topology(); err != nil {
		t.Errorf("the scheduler would reject the discovered topology: %v", err)
	}
	for i, g := range spec.GPUs {
		s := smi[i]
		if int(g.Index) != s.index || g.UUID != s.uuid {
			t.Errorf("GPU %d: index %d uuid %q, nvidia-smi: index %d uuid %q", i, g.Index, g.UUID, s.index, s.uuid)
		}
		// nvidia-smi prints an 8-digit PCI domain in upper case; the agent
		// publishes sysfs's 4-digit lower-case form.
		if want := strings.ToLower(strings.TrimPrefix(s.busID, "0000")); g.PCIBusID != want {
			t.Errorf("GPU %d: PCI bus ID %q, nvidia-smi %q (want %q)", i, g.PCIBusID, s.busID, want)
		}
		if g.MemoryMiB != s.memoryMiB {
			t.Errorf("GPU %d: memory %d MiB, nvidia-smi %d MiB", i, g.MemoryMiB, s.memoryMiB)
		}
		if p, known := gpu.LookupProduct(g.Product); known {
			if _, same := gpu.LookupProduct(s.name); !same && p.Name != strings.ReplaceAll(s.name, " ", "-") {
				t.Errorf("GPU %d: product %q (catalog) for nvidia-smi's %q", i, g.Product, s.name)
			}
		} else if g.Product != strings.ReplaceAll(s.name, " ", "-") {
			t.Errorf("GPU %d: product %q, want GPU Feature Discovery's spelling of %q", i, g.Product, s.name)
		}
		switch s.migMode {
		case "Enabled":
			if g.MIG == nil || g.MIG.Mode == tesserav1alpha1.MIGDisabled {
				t.Errorf("GPU %d: nvidia-smi says MIG is enabled, discovery says %+v", i, g.MIG)
			}
		case "Disabled":
			if g.MIG != nil && g.MIG.Mode != tesserav1alpha1.MIGDisabled {
				t.Errorf("GPU %d: nvidia-smi says MIG is disabled, discovery says %+v", i, g.MIG)
			}
		}
		// Where sysfs knows the NUMA node, the agent must publish it.
		if raw, err := os.ReadFile(filepath.Join("/sys/bus/pci/devices", g.PCIBusID, "numa_node")); err == nil {
			n, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
			switch {
			case n >= 0 && (g.NUMANode == nil || int(*g.NUMANode) != n):
				t.Errorf("GPU %d: NUMA node %v, sysfs says %d", i, g.NUMANode, n)
			case n < 0:
				t.Logf("GPU %d: sysfs knows no NUMA node (%d); published %v", i, n, g.NUMANode)
			}
		}
	}

	// The tessera-agent binary publishes what the library found.
	installCRDs(t)
	bin := os.Getenv("TESSERA_AGENT")
	if bin == "" {
		t.Fatal("TESSERA_AGENT must name the tessera-agent binary (make test-gpu builds it)")
	}
	const node = "real-gpu-node"
	ctx := context.Background()
	if out, err := exec.CommandContext(ctx, bin, "--print", "--node-name", node).CombinedOutput(); err != nil {
		t.Fatalf("tessera-agent --print: %v\n%s", err, out)
	} else {
		t.Logf("tessera-agent --print:\n%s", out)
	}
	if out, err := exec.CommandContext(ctx, bin, "--once", "--node-name", node, "--kubeconfig", cp.Kubeconfig).CombinedOutput(); err != nil {
		t.Fatalf("tessera-agent --once: %v\n%s", err, out)
	}
	u, err := dynamic.NewForConfigOrDie(cp.Config).Resource(tesserav1alpha1.NodeGPUTopologyResource).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the agent's NodeGPUTopology: %v", err)
	}
	var published tesserav1alpha1.NodeGPUTopology
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &published); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(published.Spec.GPUs, spec.GPUs, func(a, b tesserav1alpha1.GPUDevice) bool {
		return a.UUID == b.UUID && a.Product == b.Product && a.PCIBusID == b.PCIBusID
	}) {
		t.Errorf("published %+v, discovered %+v", published.Spec.GPUs, spec.GPUs)
	}
	if published.Status.DriverVersion != info.DriverVersion || int(published.Status.GPUCount) != len(spec.GPUs) {
		t.Errorf("published status %+v", published.Status)
	}

	// The scheduler hands out the GPUs by the agent's UUIDs.
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{gpu.LabelProduct: spec.GPUs[0].Product}}}
	capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("16"), v1.ResourceMemory: resource.MustParse("128Gi"), v1.ResourcePods: resource.MustParse("110"),
		"nvidia.com/gpu": *resource.NewQuantity(int64(len(spec.GPUs)), resource.DecimalSI)}
	n.Status = v1.NodeStatus{Capacity: capacity, Allocatable: capacity, Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}}
	if err := localcluster.CreateNode(ctx, cp.Client, n); err != nil {
		t.Fatal(err)
	}
	startScheduler(t)
	a := scheduleGPUs(t, "all-gpus", len(spec.GPUs))
	var want []string
	for _, g := range spec.GPUs {
		want = append(want, g.UUID)
	}
	got := slices.Clone(a.UUIDs)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("pod asking for every GPU was assigned UUIDs %v, the node's GPUs are %v", a.UUIDs, want)
	}
}
