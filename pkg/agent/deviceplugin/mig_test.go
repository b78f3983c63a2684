package deviceplugin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-sched/tessera/pkg/agent"
	"github.com/tessera-sched/tessera/pkg/agent/simulated"
	"github.com/tessera-sched/tessera/pkg/gpu"
)

func TestPlacementIDs(t *testing.T) {
	id := placementID("GPU-1-mig-x", "1g.10gb+me", 6)
	g, p, s, ok := parsePlacementID(id)
	if !ok || g != "GPU-1-mig-x" || p != "1g.10gb+me" || s != 6 {
		t.Errorf("parsePlacementID(%q) = %q %q %d %v", id, g, p, s, ok)
	}
	for _, bad := range []string{"MIG-4f1e", "GPU-a-mig-3g.40gb", "GPU-a-mig-3g.40gb-x"} {
		if _, _, _, ok := parsePlacementID(bad); ok {
			t.Errorf("parsePlacementID(%q) accepted", bad)
		}
	}
}

// simulatedMIG is a simulated DGX H100 whose GPU 7 has MIG enabled and no
// instances, served MIG-dynamic through the agent's MIG manager.
func simulatedMIG(t *testing.T) (*agent.MIGManager, MIGGPU) {
	t.Helper()
	lib, err := simulated.New("dgx-h100", "node-a", []int{7})
	if err != nil {
		t.Fatal(err)
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		t.Fatal(ret)
	}
	spec, _, err := agent.Discover(lib, agent.Options{MIGLayout: agent.MIGLayoutDynamic})
	if err != nil {
		t.Fatal(err)
	}
	g := spec.GPUs[7]
	return &agent.MIGManager{Lib: lib, Logger: klog.Background()}, MIGGPU{Index: 7, UUID: g.UUID, Product: g.Product, Dynamic: true}
}

func migPod(name string, age int, profile string, start int) *v1.Pod {
	p := assigned(name, age, gpu.Assignment{MIG: []gpu.MIGSlot{{GPU: 7, Profile: profile, Start: start}}})
	p.Spec.Containers = []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
		Limits: v1.ResourceList{v1.ResourceName(gpu.MIGResourcePrefix + profile): *resource.NewQuantity(1, resource.DecimalSI)},
	}}}
	return p
}

func pluginFor(t *testing.T, plugins []*Plugin, resource string, pods ...*v1.Pod) *Plugin {
	t.Helper()
	for _, p := range plugins {
		if p.Resource == resource {
			p.Pods = func() []*v1.Pod { return pods }
			p.WaitForPod = 300 * time.Millisecond
			p.Logger = klog.Background()
			return p
		}
	}
	t.Fatalf("no plugin serves %s", resource)
	return nil
}

// TestMIGDynamic: on a MIG-dynamic GPU every legal slot is a device; the
// container of a pod placed at a slot gets the MIG UUID of the instance the
// agent creates there; a slot overlapping it, and an illegal or absent one,
// are refused with the reason; the cleaner destroys the instance only once
// no pod holds it for the grace period.
func TestMIGDynamic(t *testing.T) {
	ctx := context.Background()
	layout, g := simulatedMIG(t)
	created := make(chan struct{}, 1)
	plugins := MIGPlugins([]MIGGPU{g}, layout, created)
	wantIDs := map[string]int{"nvidia.com/mig-1g.10gb": 7, "nvidia.com/mig-3g.40gb": 2, "nvidia.com/mig-7g.80gb": 1}
	for res, n := range wantIDs {
		if got := len(pluginFor(t, plugins, res).IDs); got != n {
			t.Errorf("%s: %d devices, want %d (one per legal slot)", res, got, n)
		}
	}

	holder := migPod("holder", 5, "3g.40gb", 4)
	p := pluginFor(t, plugins, "nvidia.com/mig-3g.40gb", holder)
	id := placementID(g.UUID, "3g.40gb", 4)
	pref, err := p.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
		AvailableDeviceIDs: []string{placementID(g.UUID, "3g.40gb", 0), id}, AllocationSize: 1,
	}}})
	if err != nil || len(pref.ContainerResponses[0].DeviceIDs) != 1 || pref.ContainerResponses[0].DeviceIDs[0] != id {
		t.Fatalf("preferred %v, %v; want the assigned slot %s", pref, err, id)
	}
	resp, err := p.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{id}}}})
	if err != nil {
		t.Fatal(err)
	}
	visible := resp.ContainerResponses[0].Envs["NVIDIA_VISIBLE_DEVICES"]
	insts, err := layout.Instances(7)
	if err != nil || len(insts) != 1 || insts[0].Profile != "3g.40gb" || insts[0].Start != 4 || insts[0].UUID != visible || !strings.HasPrefix(visible, "MIG-") {
		t.Fatalf("container sees %q; GPU 7 has instances %+v (%v); want one 3g.40gb at 4 with that MIG UUID", visible, insts, err)
	}
	select {
	case <-created:
	default:
		t.Errorf("creating an instance did not ask for the layout to be published")
	}

	overlap := migPod("overlap", 1, "1g.10gb", 5)
	illegal := migPod("illegal", 2, "3g.40gb", 2)
	tests := []struct {
		name     string
		resource string
		pod      *v1.Pod
		ids      []string
		wantErr  string
	}{
		{"a slot inside the instance in use", "nvidia.com/mig-1g.10gb", overlap, []string{placementID(g.UUID, "1g.10gb", 5)}, "MIG 1g.10gb at memory slice 5 overlaps an existing MIG instance"},
		{"an illegal start", "nvidia.com/mig-3g.40gb", illegal, []string{placementID(g.UUID, "3g.40gb", 0)}, "MIG 3g.40gb at memory slice 2 on GPU 7, not a legal slot of NVIDIA-H100-80GB-HBM3 (legal starts [0 4])"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := pluginFor(t, plugins, tc.resource, holder, tc.pod)
			_, err := p.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: tc.ids}}})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want it to say %q", err, tc.wantErr)
			}
		})
	}
	if insts, _ := layout.Instances(7); len(insts) != 1 {
		t.Fatalf("refused allocations changed GPU 7's instances: %+v", insts)
	}

	pods := []*v1.Pod{holder}
	cleaner := &MIGCleaner{GPUs: []MIGGPU{g}, Layout: layout, Pods: func() []*v1.Pod { return pods }, Grace: 10 * time.Second, Logger: klog.Background()}
	now := time.Now()
	cleaner.Sync(now)
	cleaner.Sync(now.Add(time.Hour))
	if insts, _ := layout.Instances(7); len(insts) != 1 {
		t.Fatalf("the cleaner destroyed an instance a pod holds")
	}
	holder.Status.Phase = v1.PodSucceeded
	cleaner.Sync(now.Add(2 * time.Hour))
	cleaner.Sync(now.Add(2*time.Hour + 5*time.Second))
	if insts, _ := layout.Instances(7); len(insts) != 1 {
		t.Fatalf("the cleaner destroyed an instance before its grace period")
	}
	cleaner.Sync(now.Add(2*time.Hour + 11*time.Second))
	if insts, _ := layout.Instances(7); len(insts) != 0 {
		t.Fatalf("an instance no pod holds outlived its grace period: %+v", insts)
	}
}
