package deviceplugin

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// sharePod is a pending pod asking for one share slot, assigned a.
func sharePod(name string, age int, a gpu.Assignment) *v1.Pod {
	p := assigned(name, age, a)
	p.Spec.Containers = []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
		Limits: v1.ResourceList{ResourceShareSlot: *resource.NewQuantity(1, resource.DecimalSI)},
	}}}
	return p
}

func share(g, milli int) gpu.Assignment {
	return gpu.Assignment{Shares: []gpu.Share{{GPU: g, Milli: milli}}}
}

func running(p *v1.Pod) *v1.Pod {
	p.Status.Phase = v1.PodRunning
	return p
}

func TestSlotIDs(t *testing.T) {
	id := slotID("GPU-1f2e-share", 42)
	if id != "GPU-1f2e-share-share-42" || slotGPU(id) != "GPU-1f2e-share" {
		t.Errorf("slotID = %q, slotGPU = %q: the UUID must survive a UUID that itself holds the infix", id, slotGPU(id))
	}
	for _, bad := range []string{"GPU-a", "GPU-a-share-x", "-share-1", ""} {
		if g := slotGPU(bad); g != "" {
			t.Errorf("slotGPU(%q) = %q, want no GPU", bad, g)
		}
	}
}

func TestSharesOf(t *testing.T) {
	whole := running(assigned("whole", 9, gpu.Assignment{GPUs: []int{3}}))
	held := running(sharePod("held", 8, share(0, 600)))
	// A pod the kubelet gave a share of GPU 1 though it was assigned GPU 0:
	// it holds GPU 1 (the realized annotation wins).
	moved := running(sharePod("moved", 7, share(0, 500)))
	raw, _ := gpu.MarshalAssignment(share(1, 500))
	moved.Annotations[gpu.AnnotationRealized] = raw
	noSlot := assigned("no-slot", 6, share(1, 100)) // placed before the admission policy: holds, never waits
	tests := []struct {
		name    string
		pods    []*v1.Pod
		given   map[types.UID]string
		want    []string // waiting pods, oldest first
		wantBad map[string]string
	}{
		{
			name: "waiting shares fit beside held ones, oldest first",
			pods: []*v1.Pod{whole, held, moved, noSlot, sharePod("young", 1, share(0, 400)), sharePod("old", 3, share(2, 1000-1))},
			want: []string{"old", "young"},
		},
		{
			name:    "over 1000m with held and older waiting shares; a GPU held whole; a GPU the node lacks",
			pods:    []*v1.Pod{whole, held, moved, noSlot, sharePod("fits", 5, share(1, 400)), sharePod("over", 4, share(1, 200)), sharePod("on-whole", 3, share(3, 100)), sharePod("gpu9", 2, share(9, 100))},
			want:    []string{"fits"},
			wantBad: map[string]string{"over": "to 1200m, over 1000m (held: ns/moved 500m, ns/no-slot 100m, ns/fits 400m)", "on-whole": "which pod ns/whole holds whole", "gpu9": "GPU 9, which this node does not have"},
		},
		{
			name:    "an assignment that is not one share",
			pods:    []*v1.Pod{sharePod("two", 1, gpu.Assignment{Shares: []gpu.Share{{GPU: 0, Milli: 100}, {GPU: 1, Milli: 100}}}), sharePod("gpus", 2, gpu.Assignment{GPUs: []int{2}})},
			wantBad: map[string]string{"two": "is not one GPU share", "gpus": "is not one GPU share"},
		},
		{
			name:    "a pod already handed a slot holds its share and no longer waits",
			pods:    []*v1.Pod{sharePod("handed", 5, share(2, 700)), sharePod("next", 1, share(2, 400))},
			given:   map[types.UID]string{"handed": "GPU-c"},
			wantBad: map[string]string{"next": "to 1100m"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, bad := sharesOf(tc.pods, devices, tc.given)
			var names []string
			for _, in := range got {
				names = append(names, in.pod.Name)
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("waiting %v, want %v", names, tc.want)
			}
			if len(bad) != len(tc.wantBad) {
				t.Errorf("bad %v, want %v", bad, tc.wantBad)
			}
			for _, b := range bad {
				if want, ok := tc.wantBad[b.pod.Name]; !ok || !strings.Contains(b.reason, want) {
					t.Errorf("pod %s refused with %q, want it to say %q", b.pod.Name, b.reason, want)
				}
			}
		})
	}
}

func TestPreferredAndMatchSlot(t *testing.T) {
	intents, bad := sharesOf([]*v1.Pod{sharePod("old", 5, share(1, 250)), sharePod("young", 1, share(2, 250))}, devices, nil)
	if len(bad) > 0 || len(intents) != 2 {
		t.Fatalf("intents %v, bad %v", intents, bad)
	}
	avail := []string{slotID("GPU-a", 0), slotID("GPU-b", 7), slotID("GPU-b", 3), slotID("GPU-c", 0)}
	if got := preferredSlot(intents, nil, avail, 1); !slices.Equal(got, []string{slotID("GPU-b", 3)}) {
		t.Errorf("no PodResources: preferred %v, want the oldest pod's GPU-b, lowest slot", got)
	}
	// The kubelet lists only the young pod without a slot: it is the one
	// being admitted, whatever the informer's order.
	admitting := sets.New("ns/young", "ns/unrelated")
	if got := preferredSlot(intents, admitting, avail, 1); !slices.Equal(got, []string{slotID("GPU-c", 0)}) {
		t.Errorf("kubelet admitting ns/young: preferred %v, want its GPU-c", got)
	}
	if got := preferredSlot(intents, admitting, avail, 2); got != nil {
		t.Errorf("two slots for one container: preferred %v, want no answer", got)
	}
	in, err := matchSlot(intents, admitting, slotID("GPU-c", 0))
	if err != nil || in == nil || in.pod.Name != "young" {
		t.Errorf("match = %v, %v; want ns/young", in, err)
	}
	if _, err := matchSlot(intents, admitting, slotID("GPU-b", 3)); err == nil || !strings.Contains(err.Error(), "ns/young: 250m of GPU 2 (GPU-c)") {
		t.Errorf("a slot of the old pod's GPU while the kubelet admits the young one: err %v, want it refused naming ns/young's GPU", err)
	}
	if in, err := matchSlot(nil, nil, slotID("GPU-a", 0)); in != nil || err != nil {
		t.Errorf("no pod waiting: %v, %v; want no answer and no error (the caller decides)", in, err)
	}
}

func newSharePlugin(pods ...*v1.Pod) *SharePlugin {
	return &SharePlugin{Devices: devices, Pods: func() []*v1.Pod { return pods }, WaitForPod: 300 * time.Millisecond, Logger: klog.Background()}
}

func allocate(p *SharePlugin, ids ...string) (*pluginapi.AllocateResponse, error) {
	return p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
}

// TestSharePlugin: the container of a share pod gets its assigned GPU and
// its share; slots the pod cannot use, pods whose share cannot be honoured
// and pods no Tessera scheduler placed are refused with the reason.
func TestSharePlugin(t *testing.T) {
	p := newSharePlugin(sharePod("quarter", 1, share(2, 250)))
	resp, err := allocate(p, slotID("GPU-c", 5))
	if err != nil {
		t.Fatal(err)
	}
	if env := resp.ContainerResponses[0].Envs; env["NVIDIA_VISIBLE_DEVICES"] != "GPU-c" || env["TESSERA_GPU_MILLI"] != "250" {
		t.Errorf("env %v, want NVIDIA_VISIBLE_DEVICES=GPU-c TESSERA_GPU_MILLI=250", env)
	}
	if _, err := allocate(p, slotID("GPU-c", 6)); err == nil {
		t.Errorf("a second slot with no pod left waiting was handed out")
	}
	cdi := newSharePlugin(sharePod("quarter", 1, share(2, 250)))
	cdi.CDI = true
	resp, err = allocate(cdi, slotID("GPU-c", 5))
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.ContainerResponses[0]; len(c.CdiDevices) != 1 || c.CdiDevices[0].Name != "nvidia.com/gpu=GPU-c" || c.Envs["NVIDIA_VISIBLE_DEVICES"] != "" {
		t.Errorf("with CDI: devices %v, env %v; want only the CDI device nvidia.com/gpu=GPU-c", c.CdiDevices, c.Envs)
	}

	foreign := sharePod("foreign", 1, gpu.Assignment{})
	delete(foreign.Annotations, gpu.AnnotationAssignment)
	over := sharePod("over", 1, share(0, 500))
	tests := []struct {
		name    string
		p       *SharePlugin
		ids     []string
		wantErr string
	}{
		{"a slot of another GPU", newSharePlugin(sharePod("quarter", 1, share(2, 250))), []string{slotID("GPU-a", 0)}, "assigned other GPUs (ns/quarter: 250m of GPU 2 (GPU-c))"},
		{"two slots", newSharePlugin(sharePod("quarter", 1, share(2, 250))), []string{slotID("GPU-c", 0), slotID("GPU-c", 1)}, "asks for 2 GPU share slots"},
		{"a share over 1000m", newSharePlugin(running(sharePod("held", 2, share(0, 600))), over), []string{slotID("GPU-a", 0)}, "pod ns/over: assignment gives a 500m share of GPU 0, which would take its shares to 1100m"},
		{"no Tessera assignment", newSharePlugin(foreign), []string{slotID("GPU-a", 0)}, "pod ns/foreign asks for a GPU share slot but no Tessera scheduler placed it"},
		{"nobody waits", newSharePlugin(), []string{slotID("GPU-a", 0)}, "no pod bound to this node waits for a GPU share"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := allocate(tc.p, tc.ids...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want it to say %q", err, tc.wantErr)
			}
		})
	}
}

func TestRealizedOf(t *testing.T) {
	got, err := realizedOf([]string{"GPU-d", "GPU-b"}, nil, 0, nil, devices)
	if err != nil || !slices.Equal(got.GPUs, []int{1, 3}) || !slices.Equal(got.UUIDs, []string{"GPU-b", "GPU-d"}) {
		t.Errorf("whole GPUs: %+v, %v", got, err)
	}
	got, err = realizedOf(nil, []string{slotID("GPU-c", 9)}, 250, nil, devices)
	if err != nil || len(got.Shares) != 1 || got.Shares[0] != (gpu.Share{GPU: 2, Milli: 250}) || !slices.Equal(got.UUIDs, []string{"GPU-c"}) {
		t.Errorf("a share slot: %+v, %v", got, err)
	}
	if !sameDevices(share(2, 250), got) || sameDevices(share(1, 250), got) {
		t.Errorf("sameDevices: a share of the slot's GPU is the assignment, one of another GPU is not")
	}
	if _, err := realizedOf(nil, []string{"GPU-zz-share-0"}, 250, nil, devices); err == nil {
		t.Errorf("a slot of a GPU the agent does not serve was accepted")
	}
}

// FuzzDeviceIDs: the kubelet hands back device IDs the agent made; the
// parsers of share-slot and MIG-placement IDs never panic, and whatever the
// agent writes parses back to what it wrote.
func FuzzDeviceIDs(f *testing.F) {
	f.Add("GPU-5f1b-share", "3g.40gb", 4)
	f.Add("GPU-a-mig-", "1g.10gb+me", 0)
	f.Add("", "", -1)
	f.Fuzz(func(t *testing.T, uuid, profile string, k int) {
		_ = slotGPU(uuid)
		_, _, _, _ = parsePlacementID(uuid + profile)
		if uuid == "" || k < 0 {
			return
		}
		if got := slotGPU(slotID(uuid, k)); got != uuid {
			t.Errorf("slotGPU(slotID(%q, %d)) = %q", uuid, k, got)
		}
		if profile == "" || strings.Contains(profile, "-mig-") || strings.HasSuffix(profile, "-") {
			return
		}
		g, p, s, ok := parsePlacementID(placementID(uuid, profile, k))
		if !ok || g != uuid || p != profile || s != k {
			t.Errorf("parsePlacementID(placementID(%q, %q, %d)) = %q %q %d %v", uuid, profile, k, g, p, s, ok)
		}
	})
}
