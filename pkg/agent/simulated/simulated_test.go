package simulated

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/tessera-sched/tessera/pkg/agent"
	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// TestSimulatedSystems: discovery on each simulated system finds its eight
// GPUs with stable, per-node UUIDs, two NUMA nodes, one NVLink domain and
// PCIe switches of two, and the scheduler accepts the topology.
func TestSimulatedSystems(t *testing.T) {
	for _, system := range Systems() {
		t.Run(system, func(t *testing.T) {
			spec := discover(t, system, "node-a")
			if len(spec.GPUs) != 8 {
				t.Fatalf("%d GPUs, want 8", len(spec.GPUs))
			}
			again := discover(t, system, "node-a")
			other := discover(t, system, "node-b")
			numa := map[int32]int{}
			for i, g := range spec.GPUs {
				if g.UUID != again.GPUs[i].UUID {
					t.Errorf("GPU %d: UUID %s then %s; want it stable", i, g.UUID, again.GPUs[i].UUID)
				}
				if g.UUID == other.GPUs[i].UUID {
					t.Errorf("GPU %d has the same UUID on two nodes", i)
				}
				if g.NUMANode == nil {
					t.Fatalf("GPU %d has no NUMA node", i)
				}
				numa[*g.NUMANode]++
				if g.NVLinkDomain != spec.GPUs[0].NVLinkDomain || g.NVLinkDomain == "" {
					t.Errorf("GPU %d in NVLink domain %q, want all in %q", i, g.NVLinkDomain, spec.GPUs[0].NVLinkDomain)
				}
				if g.PCIeSwitch != spec.GPUs[i/2*2].PCIeSwitch || g.PCIeSwitch == "" {
					t.Errorf("GPU %d under PCIe switch %q, want its pair's", i, g.PCIeSwitch)
				}
				if g.MIG == nil || g.MIG.Mode != tesserav1alpha1.MIGDisabled {
					t.Errorf("GPU %d: MIG %+v, want disabled", i, g.MIG)
				}
			}
			if numa[0] != 4 || numa[1] != 4 {
				t.Errorf("GPUs per NUMA node %v, want 4 and 4", numa)
			}
		})
	}
	if _, err := New("dgx-z9", "n", nil); err == nil {
		t.Error("an unknown system was accepted")
	}
}

// TestNewMIGGPUs: New takes GPUs of the system, each once, and names the
// index and the GPU count otherwise.
func TestNewMIGGPUs(t *testing.T) {
	tests := []struct {
		name    string
		migGPUs []int
		wantErr []string // substrings of the error; nil: no error
	}{
		{"none", nil, nil},
		{"the last GPU", []int{7}, nil},
		{"all", []int{0, 1, 2, 3, 4, 5, 6, 7}, nil},
		{"past the last", []int{6, 8}, []string{"MIG GPU 8", "8 GPUs"}},
		{"negative", []int{-1}, []string{"MIG GPU -1", "8 GPUs"}},
		{"twice", []int{3, 5, 3}, []string{"MIG GPU 3", "twice", "8 GPUs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New("dgx-h100", "n", tc.migGPUs)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("New(%v): %v", tc.migGPUs, err)
			case tc.wantErr != nil && err == nil:
				t.Fatalf("New(%v) accepted", tc.migGPUs)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

// TestMIG: on a DGX H100 with MIG on GPU 7, GPU instances go only at the
// driver's placements and never overlap, compute instances make MIG devices
// with UUIDs of their own, a GPU instance in use cannot be destroyed, and a
// re-created instance has a new UUID.
func TestMIG(t *testing.T) {
	lib := newLib(t, "dgx-h100", []int{7})
	for i := 0; i < 8; i++ {
		want := nvml.DEVICE_MIG_DISABLE
		if i == 7 {
			want = nvml.DEVICE_MIG_ENABLE
		}
		current, pending, ret := device(t, lib, i).GetMigMode()
		if ret != nvml.SUCCESS || current != want || pending != want {
			t.Errorf("GPU %d: MIG mode %d, pending %d (%v); want %d", i, current, pending, ret, want)
		}
		n, ret := device(t, lib, i).GetMaxMigDeviceCount()
		if i == 7 && (ret != nvml.SUCCESS || n != 7) || i != 7 && ret != nvml.ERROR_NOT_SUPPORTED {
			t.Errorf("GPU %d: GetMaxMigDeviceCount = %d, %v", i, n, ret)
		}
	}
	dev := device(t, lib, 7)
	g1, g3, g4 := profile(t, dev, nvml.GPU_INSTANCE_PROFILE_1_SLICE, 1), profile(t, dev, nvml.GPU_INSTANCE_PROFILE_3_SLICE, 3), profile(t, dev, nvml.GPU_INSTANCE_PROFILE_4_SLICE, 4)
	if pl, ret := dev.GetGpuInstancePossiblePlacements(&g3); ret != nvml.SUCCESS || fmt.Sprint(pl) != "[{0 4} {4 4}]" {
		t.Errorf("3g placements %v (%v), want the driver's [{0 4} {4 4}]", pl, ret)
	}
	if _, ret := device(t, lib, 0).CreateGpuInstanceWithPlacement(&g3, &nvml.GpuInstancePlacement{Start: 0, Size: 4}); ret != nvml.ERROR_NOT_SUPPORTED {
		t.Errorf("a GPU instance on a GPU without MIG: %v, want ERROR_NOT_SUPPORTED", ret)
	}

	gis := map[uint32]nvml.GpuInstance{} // by start
	steps := []struct {
		name    string
		profile nvml.GpuInstanceProfileInfo
		start   uint32
		size    uint32
		want    nvml.Return
	}{
		{"3g at an illegal start", g3, 1, 4, nvml.ERROR_INVALID_ARGUMENT},
		{"3g a memory slice short", g3, 0, 3, nvml.ERROR_INVALID_ARGUMENT},
		{"3g at 0", g3, 0, 4, nvml.SUCCESS},
		{"3g at 0 again", g3, 0, 4, nvml.ERROR_INSUFFICIENT_RESOURCES},
		{"1g in the 3g's last memory slice", g1, 3, 1, nvml.ERROR_INSUFFICIENT_RESOURCES},
		{"3g at 4", g3, 4, 4, nvml.SUCCESS},
		{"4g at 0 over both", g4, 0, 4, nvml.ERROR_INSUFFICIENT_RESOURCES},
	}
	for _, s := range steps {
		gi, ret := dev.CreateGpuInstanceWithPlacement(&s.profile, &nvml.GpuInstancePlacement{Start: s.start, Size: s.size})
		if ret != s.want {
			t.Fatalf("%s: %v, want %v", s.name, ret, s.want)
		}
		if ret == nvml.SUCCESS {
			info, _ := gi.GetInfo()
			if info.Placement.Start != s.start || info.Placement.Size != s.size || info.ProfileId != s.profile.Id {
				t.Errorf("%s: GPU instance %+v", s.name, info)
			}
			gis[s.start] = gi
		}
	}
	if _, ret := dev.CreateGpuInstance(&g1); ret != nvml.ERROR_INSUFFICIENT_RESOURCES {
		t.Errorf("a 1g anywhere on a full GPU: %v, want ERROR_INSUFFICIENT_RESOURCES", ret)
	}
	if migs := migDevices(t, dev); len(migs) != 0 {
		t.Fatalf("MIG devices %v before any compute instance", migs)
	}

	for _, start := range []uint32{0, 4} {
		ci := computeInstance(t, gis[start])
		if _, ret := gis[start].CreateComputeInstance(ci); ret != nvml.ERROR_INSUFFICIENT_RESOURCES {
			t.Errorf("a second compute instance at %d: %v, want ERROR_INSUFFICIENT_RESOURCES", start, ret)
		}
	}
	migs := migDevices(t, dev)
	if len(migs) != 2 {
		t.Fatalf("MIG devices %v, want two", migs)
	}
	for i, start := range []uint32{0, 4} {
		info, _ := gis[start].GetInfo()
		m := migs[i]
		if m.gi != int(info.Id) || m.ci != 0 || !strings.HasPrefix(m.uuid, "MIG-") {
			t.Errorf("MIG device %d is %+v, want GPU instance %d (start %d), compute instance 0, a MIG- UUID", i, m, info.Id, start)
		}
		if h, ret := lib.DeviceGetHandleByUUID(m.uuid); ret != nvml.SUCCESS || h != m.handle {
			t.Errorf("DeviceGetHandleByUUID(%s): %v, %v", m.uuid, h, ret)
		}
	}
	if migs[0].uuid == migs[1].uuid {
		t.Errorf("two MIG devices share UUID %s", migs[0].uuid)
	}
	if again := migDevices(t, dev); again[0].uuid != migs[0].uuid || again[1].uuid != migs[1].uuid {
		t.Errorf("MIG UUIDs changed between calls: %v then %v", migs, again)
	}

	// Destroying the instance at 0: not while its compute instance exists.
	if ret := gis[0].Destroy(); ret != nvml.ERROR_IN_USE {
		t.Fatalf("destroying a GPU instance with a compute instance: %v, want ERROR_IN_USE", ret)
	}
	for _, ci := range computeInstances(t, gis[0]) {
		if ret := ci.Destroy(); ret != nvml.SUCCESS {
			t.Fatalf("destroying the compute instance: %v", ret)
		}
	}
	if _, ret := migs[0].handle.GetUUID(); ret != nvml.ERROR_INVALID_ARGUMENT {
		t.Errorf("the destroyed MIG device's handle answers %v, want ERROR_INVALID_ARGUMENT", ret)
	}
	if ret := gis[0].Destroy(); ret != nvml.SUCCESS {
		t.Fatalf("destroying the emptied GPU instance: %v", ret)
	}
	if ret := gis[0].Destroy(); ret != nvml.ERROR_INVALID_ARGUMENT {
		t.Errorf("destroying it twice: %v, want ERROR_INVALID_ARGUMENT", ret)
	}
	if left := migDevices(t, dev); len(left) != 1 || left[0].uuid != migs[1].uuid {
		t.Fatalf("MIG devices %v after destroying one, want only %s", left, migs[1].uuid)
	}
	if _, ret := lib.DeviceGetHandleByUUID(migs[0].uuid); ret != nvml.ERROR_NOT_FOUND {
		t.Errorf("the destroyed MIG device is still found by UUID: %v", ret)
	}

	// Re-created (at the first free placement, 0): same IDs, new UUID.
	gi, ret := dev.CreateGpuInstance(&g3)
	if ret != nvml.SUCCESS {
		t.Fatalf("re-creating the 3g: %v", ret)
	}
	if info, _ := gi.GetInfo(); info.Placement.Start != 0 || int(info.Id) != migs[0].gi {
		t.Errorf("re-created 3g %+v, want at 0 with GPU instance ID %d", info, migs[0].gi)
	}
	computeInstance(t, gi)
	now := migDevices(t, dev)
	if len(now) != 2 || now[0].gi != migs[0].gi || now[0].ci != migs[0].ci || now[0].uuid == migs[0].uuid || now[1].uuid != migs[1].uuid {
		t.Errorf("MIG devices %v after re-creating, were %v: want the re-created one with a new UUID", now, migs)
	}
	if _, ret := dev.SetMigMode(nvml.DEVICE_MIG_DISABLE); ret != nvml.ERROR_IN_USE {
		t.Errorf("disabling MIG with instances: %v, want ERROR_IN_USE", ret)
	}
}

// TestMIGDiscovery: discovery publishes the MIG GPU as Static (Dynamic with
// that layout) with the created instances, their profiles, starts and
// UUIDs, and the scheduler accepts the topology.
func TestMIGDiscovery(t *testing.T) {
	lib := newLib(t, "dgx-h100", []int{7})
	dev := device(t, lib, 7)
	for _, c := range []struct{ profile, start, size int }{
		{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 4, 4},
		{nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2, 2, 2},
	} {
		info, ret := dev.GetGpuInstanceProfileInfo(c.profile)
		if ret != nvml.SUCCESS {
			t.Fatal(ret)
		}
		gi, ret := dev.CreateGpuInstanceWithPlacement(&info, &nvml.GpuInstancePlacement{Start: uint32(c.start), Size: uint32(c.size)})
		if ret != nvml.SUCCESS {
			t.Fatalf("creating profile %d at %d: %v", c.profile, c.start, ret)
		}
		computeInstance(t, gi)
	}
	uuid := map[int]string{} // GPU instance ID -> MIG UUID
	for _, m := range migDevices(t, dev) {
		uuid[m.gi] = m.uuid
	}
	// The 3g was created first (GPU instance 1), the 1g.20gb second.
	want := []tesserav1alpha1.MIGInstance{{Profile: "1g.20gb", Start: 2, UUID: uuid[2]}, {Profile: "3g.40gb", Start: 4, UUID: uuid[1]}}
	for _, tc := range []struct {
		layout agent.MIGLayout
		mode   tesserav1alpha1.MIGMode
	}{
		{"", tesserav1alpha1.MIGStatic},
		{agent.MIGLayoutDynamic, tesserav1alpha1.MIGDynamic},
	} {
		spec, _, err := agent.Discover(lib, agent.Options{MIGLayout: tc.layout})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := spec.Topology(); err != nil {
			t.Errorf("the scheduler rejects the topology: %v", err)
		}
		for i, g := range spec.GPUs {
			if i != 7 {
				if g.MIG == nil || g.MIG.Mode != tesserav1alpha1.MIGDisabled {
					t.Errorf("GPU %d: MIG %+v, want disabled", i, g.MIG)
				}
				continue
			}
			if g.MIG == nil || g.MIG.Mode != tc.mode || fmt.Sprint(g.MIG.Instances) != fmt.Sprint(want) {
				t.Errorf("layout %q: GPU 7 MIG %+v, want %s with %v", tc.layout, g.MIG, tc.mode, want)
			}
		}
	}
}

// TestMIGConcurrent: creating, listing and destroying instances from many
// goroutines at once, with discovery running, leaves a consistent GPU (run
// with -race to check the locking).
func TestMIGConcurrent(t *testing.T) {
	lib := newLib(t, "dgx-a100", []int{0})
	dev := device(t, lib, 0)
	g1 := profile(t, dev, nvml.GPU_INSTANCE_PROFILE_1_SLICE, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; k < 20; k++ {
			if _, _, err := agent.Discover(lib, agent.Options{}); err != nil {
				t.Errorf("discovery during changes: %v", err)
				return
			}
		}
	}()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 50; k++ {
				gi, ret := dev.CreateGpuInstance(&g1)
				if ret == nvml.ERROR_INSUFFICIENT_RESOURCES {
					continue
				}
				if ret != nvml.SUCCESS {
					t.Errorf("creating: %v", ret)
					return
				}
				ciInfo, ret := gi.GetComputeInstanceProfileInfo(nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
				if ret != nvml.SUCCESS {
					t.Errorf("compute instance profile: %v", ret)
					return
				}
				ci, ret := gi.CreateComputeInstance(&ciInfo)
				if ret != nvml.SUCCESS {
					t.Errorf("creating a compute instance: %v", ret)
					return
				}
				for i := 0; i < 7; i++ {
					if h, ret := dev.GetMigDeviceHandleByIndex(i); ret == nvml.SUCCESS {
						_, _ = h.GetUUID()
					}
				}
				if ret := ci.Destroy(); ret != nvml.SUCCESS {
					t.Errorf("destroying the compute instance: %v", ret)
				}
				if ret := gi.Destroy(); ret != nvml.SUCCESS {
					t.Errorf("destroying the GPU instance: %v", ret)
				}
			}
		}()
	}
	wg.Wait()
	if gis, ret := dev.GetGpuInstances(&g1); ret != nvml.SUCCESS || len(gis) != 0 {
		t.Errorf("GPU instances left: %d (%v)", len(gis), ret)
	}
	if migs := migDevices(t, dev); len(migs) != 0 {
		t.Errorf("MIG devices left: %v", migs)
	}
}

func newLib(t *testing.T, system string, migGPUs []int) nvml.Interface {
	t.Helper()
	lib, err := New(system, "node-a", migGPUs)
	if err != nil {
		t.Fatal(err)
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		t.Fatal(ret)
	}
	return lib
}

func device(t *testing.T, lib nvml.Interface, i int) nvml.Device {
	t.Helper()
	d, ret := lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		t.Fatal(ret)
	}
	return d
}

// profile returns GPU instance profile p, checking its compute slices.
func profile(t *testing.T, dev nvml.Device, p int, slices uint32) nvml.GpuInstanceProfileInfo {
	t.Helper()
	info, ret := dev.GetGpuInstanceProfileInfo(p)
	if ret != nvml.SUCCESS || info.SliceCount != slices {
		t.Fatalf("GPU instance profile %d: %+v (%v), want %d slices", p, info, ret, slices)
	}
	return info
}

// computeInstance creates gi's compute instance over all its slices and
// returns its profile.
func computeInstance(t *testing.T, gi nvml.GpuInstance) *nvml.ComputeInstanceProfileInfo {
	t.Helper()
	info, _ := gi.GetInfo()
	giProfile, _ := info.Device.GetGpuInstanceProfileInfo(int(info.ProfileId))
	for p := 0; p < nvml.COMPUTE_INSTANCE_PROFILE_COUNT; p++ {
		ci, ret := gi.GetComputeInstanceProfileInfo(p, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		if ret != nvml.SUCCESS || ci.SliceCount != giProfile.SliceCount {
			continue
		}
		if _, ret := gi.CreateComputeInstance(&ci); ret != nvml.SUCCESS {
			t.Fatalf("creating a compute instance in GPU instance %d: %v", info.Id, ret)
		}
		return &ci
	}
	t.Fatalf("GPU instance %d has no compute instance profile of %d slices", info.Id, giProfile.SliceCount)
	return nil
}

func computeInstances(t *testing.T, gi nvml.GpuInstance) []nvml.ComputeInstance {
	t.Helper()
	var out []nvml.ComputeInstance
	for p := 0; p < nvml.COMPUTE_INSTANCE_PROFILE_COUNT; p++ {
		info, ret := gi.GetComputeInstanceProfileInfo(p, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		if ret != nvml.SUCCESS {
			continue
		}
		cis, ret := gi.GetComputeInstances(&info)
		if ret != nvml.SUCCESS {
			t.Fatal(ret)
		}
		out = append(out, cis...)
	}
	return out
}

type migEntry struct {
	gi, ci int
	uuid   string
	handle nvml.Device
}

// migDevices lists dev's MIG devices through GetMigDeviceHandleByIndex,
// checking that they are dense from index 0 and that each is a MIG handle
// of dev.
func migDevices(t *testing.T, dev nvml.Device) []migEntry {
	t.Helper()
	n, ret := dev.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		t.Fatal(ret)
	}
	var out []migEntry
	for i := 0; i < n; i++ {
		h, ret := dev.GetMigDeviceHandleByIndex(i)
		if ret == nvml.ERROR_NOT_FOUND {
			for j := i + 1; j < n; j++ {
				if _, ret := dev.GetMigDeviceHandleByIndex(j); ret != nvml.ERROR_NOT_FOUND {
					t.Fatalf("MIG device %d: %v after none at %d", j, ret, i)
				}
			}
			break
		}
		if ret != nvml.SUCCESS {
			t.Fatalf("MIG device %d: %v", i, ret)
		}
		m := migEntry{handle: h}
		var ret1, ret2, ret3 nvml.Return
		m.gi, ret1 = h.GetGpuInstanceId()
		m.ci, ret2 = h.GetComputeInstanceId()
		m.uuid, ret3 = h.GetUUID()
		isMIG, ret4 := h.IsMigDeviceHandle()
		parent, ret5 := h.GetDeviceHandleFromMigDeviceHandle()
		if ret1 != nvml.SUCCESS || ret2 != nvml.SUCCESS || ret3 != nvml.SUCCESS || ret4 != nvml.SUCCESS || ret5 != nvml.SUCCESS || !isMIG || parent != dev {
			t.Fatalf("MIG device %d: %+v %v %v %v %v %v, MIG handle %v, parent %v", i, m, ret1, ret2, ret3, ret4, ret5, isMIG, parent == dev)
		}
		if len(out) > 0 {
			if last := out[len(out)-1]; last.gi > m.gi || last.gi == m.gi && last.ci >= m.ci {
				t.Fatalf("MIG devices out of order: %+v before %+v", last, m)
			}
		}
		out = append(out, m)
	}
	if _, ret := dev.GetMigDeviceHandleByIndex(n); ret != nvml.ERROR_INVALID_ARGUMENT {
		t.Errorf("MIG device %d (past the maximum): %v, want ERROR_INVALID_ARGUMENT", n, ret)
	}
	return out
}

func discover(t *testing.T, system, node string) tesserav1alpha1.NodeGPUTopologySpec {
	t.Helper()
	lib, err := New(system, node, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, _, err := agent.Discover(lib, agent.Options{})
	if err != nil {
		t.Fatalf("discovery on simulated %s: %v", system, err)
	}
	if _, err := spec.Topology(); err != nil {
		t.Errorf("the scheduler rejects simulated %s: %v", system, err)
	}
	return spec
}
