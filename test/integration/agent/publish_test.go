// Package agent tests tessera-agent's publisher against a real API server
// and the real scheduler. It is a package of its own because go-nvml (cgo)
// cannot be linked beside kustomize, which the main integration package uses.
package agent

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"testing"
	"testing/fstest"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/tessera-sched/tessera/manifests"
	"github.com/tessera-sched/tessera/pkg/agent"
	"github.com/tessera-sched/tessera/pkg/agent/nvmltest"
	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/localcluster"
)

var cp *localcluster.ControlPlane

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tessera-agent-integration-")
	if err != nil {
		panic(err)
	}
	cp, err = localcluster.StartProgram(localcluster.Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cp.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestPublishedTopologyDrivesPlacement: the agent discovers a DGX H100
// (NVIDIA's mock) whose NVLink P2P reports two cliques, {0,1,4,5} and
// {2,3,6,7}, publishes it through the real API server, and the scheduler
// places by it. GPU Feature Discovery labels alone would call the board one
// NVSwitch domain and give the second 2-GPU pod GPUs 2,3 (next to the first
// pair on NUMA node 0); with the agent's object it fills the first pair's
// clique instead (best fit by interconnect), e.g. GPUs 4,5.
func TestPublishedTopologyDrivesPlacement(t *testing.T) {
	ctx := context.Background()
	installCRDs(t)

	// The mock node: NVLink P2P OK only inside each clique.
	clique := func(i int) int { return (i % 4) / 2 }
	s := nvmltest.Stub(dgxh100.New())
	for i := range s.Devices {
		dev := s.Devices[i].(*server.Device)
		self := i
		dev.GetP2PStatusFunc = func(peer nvml.Device, _ nvml.GpuP2PCapsIndex) (nvml.GpuP2PStatus, nvml.Return) {
			for j, d := range s.Devices {
				if d == peer && clique(j) == clique(self) {
					return nvml.P2P_STATUS_OK, nvml.SUCCESS
				}
			}
			return nvml.P2P_STATUS_NOT_SUPPORTED, nvml.SUCCESS
		}
	}
	pub := &agent.Publisher{
		Client:       dynamic.NewForConfigOrDie(cp.Config),
		NodeName:     "agent-h100",
		AgentVersion: "test",
		Discover: func() (tesserav1alpha1.NodeGPUTopologySpec, agent.Info, error) {
			return agent.Discover(s, agent.Options{HostFS: fstest.MapFS{}})
		},
	}
	if res, err := pub.Sync(ctx); err != nil {
		t.Fatalf("publishing: %v (%s)", err, res)
	}
	if res, err := pub.Sync(ctx); err != nil || res == "" {
		t.Fatalf("second sync: %v (%s)", err, res)
	}

	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "agent-h100", Labels: map[string]string{gpu.LabelProduct: "NVIDIA-H100-80GB-HBM3"}}}
	node, err := cp.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("96"), v1.ResourceMemory: resource.MustParse("1Ti"), v1.ResourcePods: resource.MustParse("110"), "nvidia.com/gpu": resource.MustParse("8")}
	node.Status = v1.NodeStatus{Capacity: capacity, Allocatable: capacity, Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}}
	if _, err := cp.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	startScheduler(t)

	first := scheduleGPUs(t, "pair-1", 2)
	second := scheduleGPUs(t, "pair-2", 2)
	for _, a := range []gpu.Assignment{first, second} {
		if len(a.GPUs) != 2 || clique(a.GPUs[0]) != clique(a.GPUs[1]) {
			t.Fatalf("pair got GPUs %v, not two GPUs of one published clique", a.GPUs)
		}
	}
	if clique(first.GPUs[0]) != clique(second.GPUs[0]) {
		t.Errorf("second pair %v did not fill the first pair's clique %v (best fit by the published topology)", second.GPUs, first.GPUs)
	}
	if fmt.Sprint(second.GPUs) == "[2 3]" {
		t.Errorf("second pair got GPUs 2,3: the label-derived topology decided, not the agent's")
	}
	// The UUIDs come from the agent's discovery.
	uuid, _ := s.Devices[second.GPUs[0]].GetUUID()
	if len(second.UUIDs) != 2 || second.UUIDs[0] != uuid {
		t.Errorf("assignment UUIDs %v, want the mock's %q first", second.UUIDs, uuid)
	}
}

// startScheduler runs tessera-scheduler with the shipped configuration
// until the test ends.
func startScheduler(t *testing.T) {
	t.Helper()
	config, err := fs.ReadFile(manifests.FS, "base/scheduler-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sched, err := localcluster.StartScheduler(context.Background(), cp.Kubeconfig, config, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sched.Stop)
}

// installCRDs installs the CRDs we ship (only their objects, not the
// kustomize inputs beside them).
func installCRDs(t *testing.T) {
	t.Helper()
	crds, err := fs.Glob(manifests.FS, "crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range crds {
		if base := path.Base(name); base == "kustomization.yaml" || base == "elasticquota-validation.yaml" {
			continue // kustomize inputs, not objects
		}
		data, _ := fs.ReadFile(manifests.FS, name)
		objs, err := localcluster.DecodeYAML(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := localcluster.Apply(context.Background(), cp.Config, objs, false); err != nil {
			t.Fatal(err)
		}
	}
}

// scheduleGPUs creates a pod asking for n whole GPUs and returns the GPU
// assignment the scheduler gave it.
func scheduleGPUs(t *testing.T, name string, n int) gpu.Assignment {
	t.Helper()
	ctx := context.Background()
	q := *resource.NewQuantity(int64(n), resource.DecimalSI)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.PodSpec{SchedulerName: "tessera-scheduler", Containers: []v1.Container{{
			Name: "main", Image: "registry.k8s.io/pause:3.10",
			Resources: v1.ResourceRequirements{Limits: v1.ResourceList{"nvidia.com/gpu": q}},
		}}},
	}
	if _, err := cp.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var a gpu.Assignment
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cp.Client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil || p.Spec.NodeName == "" {
			return false, nil
		}
		a, err = gpu.UnmarshalAssignment(p.Annotations[gpu.AnnotationAssignment])
		return true, err
	})
	if err != nil {
		t.Fatalf("pod %s: %v", name, err)
	}
	return a
}
