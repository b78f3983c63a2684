package deviceplugin

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// lateInformer returns no pods for the first calls, then pods: the
// kubelet asks about a pod before the agent's informer has seen it.
func lateInformer(after int32, pods ...*v1.Pod) func() []*v1.Pod {
	var calls atomic.Int32
	return func() []*v1.Pod {
		if calls.Add(1) <= after {
			return nil
		}
		return pods
	}
}

func newTestPlugin(pods func() []*v1.Pod) *Plugin {
	return &Plugin{Devices: devices, Pods: pods, WaitForPod: 2 * time.Second, Logger: klog.Background(), given: map[types.UID]sets.Set[string]{}, reported: map[types.UID]string{}}
}

// TestPluginWaitsForTheInformer: when the kubelet asks before the pod
// reached the informer, the plugin still answers with the pod's assigned
// devices and allocates them to it, instead of handing out others.
func TestPluginWaitsForTheInformer(t *testing.T) {
	ctx := context.Background()
	pod := withContainers(assigned("late", 1, gpu.Assignment{GPUs: []int{2, 3}}), 2)
	p := newTestPlugin(lateInformer(3, pod))
	resp, err := p.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
		AvailableDeviceIDs: []string{"GPU-a", "GPU-b", "GPU-c", "GPU-d"}, AllocationSize: 2,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.ContainerResponses[0].DeviceIDs; !slices.Equal(got, []string{"GPU-c", "GPU-d"}) {
		t.Fatalf("preferred %v, want the late pod's GPU-c,GPU-d", got)
	}
	alloc, err := p.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"GPU-c", "GPU-d"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if env := alloc.ContainerResponses[0].Envs["NVIDIA_VISIBLE_DEVICES"]; env != "GPU-c,GPU-d" {
		t.Errorf("NVIDIA_VISIBLE_DEVICES=%q, want GPU-c,GPU-d", env)
	}
	// The same devices again (another pod): no longer anyone's remaining
	// assignment; the late pod has nothing left to receive.
	if _, err := p.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"GPU-c"}}}}); err != nil {
		t.Errorf("a device already handed out, then asked for again: %v", err)
	}
}

// TestPluginRefuses: Allocate fails closed for devices that are another
// pod's, and for a pod whose assignment names a GPU the node lacks.
func TestPluginRefuses(t *testing.T) {
	ctx := context.Background()
	owner := withContainers(assigned("owner", 2, gpu.Assignment{GPUs: []int{0, 1}}), 2)
	bad := withContainers(assigned("gpu9", 1, gpu.Assignment{GPUs: []int{9}}), 1)
	tests := []struct {
		name    string
		pods    []*v1.Pod
		ids     []string
		wantErr string
	}{
		{name: "another pod's devices", pods: []*v1.Pod{owner}, ids: []string{"GPU-b", "GPU-c"}, wantErr: "GPU-b is assigned to pod ns/owner"},
		{name: "an assignment the node cannot honour", pods: []*v1.Pod{bad}, ids: []string{"GPU-a"}, wantErr: "pod ns/gpu9: assignment names GPU 9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPlugin(func() []*v1.Pod { return tc.pods })
			p.WaitForPod = 300 * time.Millisecond
			_, err := p.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: tc.ids}}})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want it to say %q", err, tc.wantErr)
			}
		})
	}
}
