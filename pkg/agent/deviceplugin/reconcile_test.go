package deviceplugin

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// podResources serves a fixed PodResources List, as the kubelet does.
type podResources struct {
	podresourcesapi.UnimplementedPodResourcesListerServer
	pods []*podresourcesapi.PodResources
}

func (s podResources) List(context.Context, *podresourcesapi.ListPodResourcesRequest) (*podresourcesapi.ListPodResourcesResponse, error) {
	return &podresourcesapi.ListPodResourcesResponse{PodResources: s.pods}, nil
}

func servePodResources(t *testing.T, pods ...*podresourcesapi.PodResources) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "kubelet.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	podresourcesapi.RegisterPodResourcesListerServer(srv, podResources{pods: pods})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return socket
}

func holding(ns, name, resource string, ids ...string) *podresourcesapi.PodResources {
	return &podresourcesapi.PodResources{Namespace: ns, Name: name, Containers: []*podresourcesapi.ContainerResources{{
		Name: "c", Devices: []*podresourcesapi.ContainerDevices{{ResourceName: resource, DeviceIds: ids}},
	}}}
}

// TestReconcilerRecordsWhatPodsHold: a Tessera pod the kubelet gave another
// GPU than assigned, and a foreign pod, get tessera.dev/gpu-realized with
// the GPUs they hold; the mismatch is counted and an Event says it; a pod
// holding its assignment (a share of its GPU) is left alone.
func TestReconcilerRecordsWhatPodsHold(t *testing.T) {
	moved := running(assigned("moved", 3, gpu.Assignment{GPUs: []int{0}}))
	foreign := running(assigned("foreign", 2, gpu.Assignment{}))
	delete(foreign.Annotations, gpu.AnnotationAssignment)
	fine := running(sharePod("fine", 1, share(2, 250)))
	pods := []*v1.Pod{moved, foreign, fine}
	client := fake.NewClientset(moved, foreign, fine)
	events := record.NewFakeRecorder(10)
	socket := servePodResources(t,
		holding("ns", "moved", ResourceGPU, "GPU-b"),
		holding("ns", "foreign", ResourceGPU, "GPU-d"),
		holding("ns", "fine", ResourceShareSlot, slotID("GPU-c", 4)))
	r := &Reconciler{Client: client, Devices: devices, Pods: func() []*v1.Pod { return pods }, Socket: socket, Events: events, Logger: klog.Background(), warned: map[types.UID]string{}}
	RegisterMetrics()
	before, _ := testutil.GetCounterMetricValue(mismatches.WithLabelValues(ResourceGPU))
	if err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"moved": `{"v":1,"gpus":[1],"uuids":["GPU-b"]}`, "foreign": `{"v":1,"gpus":[3],"uuids":["GPU-d"]}`, "fine": ""} {
		p, err := client.CoreV1().Pods("ns").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Annotations[gpu.AnnotationRealized]; got != want {
			t.Errorf("pod %s: %s = %q, want %q", name, gpu.AnnotationRealized, got, want)
		}
	}
	after, _ := testutil.GetCounterMetricValue(mismatches.WithLabelValues(ResourceGPU))
	if after-before != 1 {
		t.Errorf("tessera_device_assignment_mismatch_total{resource=nvidia.com/gpu} rose by %v, want 1 (the moved pod)", after-before)
	}
	if len(events.Events) != 1 {
		t.Errorf("%d events, want one GPUAssignmentMismatch", len(events.Events))
	}
}
