package agent

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// gi is a MIG GPU instance to create on a mock: an NVML profile enumerator
// and a placement. Sizes are in memory slices, as real NVML reports them.
type gi struct {
	profile     int
	start, size uint32
}

// withMIG enables MIG on the mock's GPU 0 and creates the instances.
func withMIG(t *testing.T, s *server.Server, instances ...gi) *server.Device {
	t.Helper()
	d := mockDevice(s, 0)
	if ret, _ := d.SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", ret)
	}
	for _, in := range instances {
		info, ret := d.GetGpuInstanceProfileInfo(in.profile)
		if ret != nvml.SUCCESS {
			t.Fatalf("GetGpuInstanceProfileInfo(%d): %v", in.profile, ret)
		}
		if _, ret := d.CreateGpuInstanceWithPlacement(&info, &nvml.GpuInstancePlacement{Start: in.start, Size: in.size}); ret != nvml.SUCCESS {
			t.Fatalf("CreateGpuInstanceWithPlacement: %v", ret)
		}
	}
	return d
}

// TestDiscoverMIG sets up MIG instances on mocked GPUs and checks the
// profile names, starts and modes Discover publishes for them.
func TestDiscoverMIG(t *testing.T) {
	tests := []struct {
		name      string
		server    *server.Server
		instances []gi
		layout    MIGLayout
		wantMode  tesserav1alpha1.MIGMode
		want      []tesserav1alpha1.MIGInstance
	}{
		{
			name:   "H100 mixed layout",
			server: dgxh100.New(),
			instances: []gi{
				{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 4, 4},
				{nvml.GPU_INSTANCE_PROFILE_2_SLICE, 0, 2},
				{nvml.GPU_INSTANCE_PROFILE_1_SLICE, 2, 1},
				{nvml.GPU_INSTANCE_PROFILE_1_SLICE, 3, 1},
			},
			wantMode: tesserav1alpha1.MIGStatic,
			want:     []tesserav1alpha1.MIGInstance{{Profile: "2g.20gb", Start: 0}, {Profile: "1g.10gb", Start: 2}, {Profile: "1g.10gb", Start: 3}, {Profile: "3g.40gb", Start: 4}},
		},
		{
			name:      "H100 under --mig-layout=dynamic",
			server:    dgxh100.New(),
			instances: []gi{{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 0, 4}},
			layout:    MIGLayoutDynamic,
			wantMode:  tesserav1alpha1.MIGDynamic,
			want:      []tesserav1alpha1.MIGInstance{{Profile: "3g.40gb", Start: 0}},
		},
		{
			name:   "H100 double-memory 1g",
			server: dgxh100.New(),
			instances: []gi{
				{nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2, 6, 2},
				{nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2, 0, 2},
			},
			wantMode: tesserav1alpha1.MIGStatic,
			want:     []tesserav1alpha1.MIGInstance{{Profile: "1g.20gb", Start: 0}, {Profile: "1g.20gb", Start: 6}},
		},
		{
			name:   "H100 media-extension 1g published as its base profile",
			server: dgxh100.New(),
			instances: []gi{
				{nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, 0, 1},
				{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 4, 4},
			},
			wantMode: tesserav1alpha1.MIGStatic,
			want:     []tesserav1alpha1.MIGInstance{{Profile: "1g.10gb", Start: 0}, {Profile: "3g.40gb", Start: 4}},
		},
		{
			name:      "H100 whole-GPU instance",
			server:    dgxh100.New(),
			instances: []gi{{nvml.GPU_INSTANCE_PROFILE_7_SLICE, 0, 8}},
			wantMode:  tesserav1alpha1.MIGStatic,
			want:      []tesserav1alpha1.MIGInstance{{Profile: "7g.80gb", Start: 0}},
		},
		{
			// The H200 mock's profile sizes round to other names than the
			// catalog's; the instance shapes decide.
			name:   "H200",
			server: dgxh200.New(),
			instances: []gi{
				{nvml.GPU_INSTANCE_PROFILE_1_SLICE, 0, 1},
				{nvml.GPU_INSTANCE_PROFILE_2_SLICE, 2, 2},
				{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 4, 4},
			},
			wantMode: tesserav1alpha1.MIGStatic,
			want:     []tesserav1alpha1.MIGInstance{{Profile: "1g.18gb", Start: 0}, {Profile: "2g.35gb", Start: 2}, {Profile: "3g.71gb", Start: 4}},
		},
		{
			name:   "B200",
			server: dgxb200.New(),
			instances: []gi{
				{nvml.GPU_INSTANCE_PROFILE_4_SLICE, 0, 4},
				{nvml.GPU_INSTANCE_PROFILE_1_SLICE, 4, 1},
				{nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2, 6, 2},
			},
			wantMode: tesserav1alpha1.MIGStatic,
			want:     []tesserav1alpha1.MIGInstance{{Profile: "4g.90gb", Start: 0}, {Profile: "1g.23gb", Start: 4}, {Profile: "1g.45gb", Start: 6}},
		},
		{
			// A product the catalog does not know keeps the names NVIDIA's
			// tools would print; the scheduler infers their geometry.
			name:   "unknown product (the default A100 mock)",
			server: dgxa100.New(),
			instances: []gi{
				{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 0, 4},
				{nvml.GPU_INSTANCE_PROFILE_2_SLICE, 4, 2},
				{nvml.GPU_INSTANCE_PROFILE_1_SLICE, 6, 1},
			},
			wantMode: tesserav1alpha1.MIGStatic,
			want:     []tesserav1alpha1.MIGInstance{{Profile: "3g.20gb", Start: 0}, {Profile: "2g.10gb", Start: 4}, {Profile: "1g.5gb", Start: 6}},
		},
		{
			name:     "MIG enabled, no instances yet",
			server:   dgxh100.New(),
			wantMode: tesserav1alpha1.MIGStatic,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stubbed(tc.server)
			withMIG(t, s, tc.instances...)
			spec, _, err := Discover(s, Options{HostFS: fstest.MapFS{}, MIGLayout: tc.layout})
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			mig := spec.GPUs[0].MIG
			if mig == nil {
				t.Fatalf("GPU 0 has no MIG configuration")
			}
			if mig.Mode != tc.wantMode {
				t.Errorf("MIG mode %q, want %q", mig.Mode, tc.wantMode)
			}
			if !reflect.DeepEqual(mig.Instances, tc.want) {
				t.Errorf("MIG instances %+v, want %+v", mig.Instances, tc.want)
			}
			if m := spec.GPUs[1].MIG; m == nil || m.Mode != tesserav1alpha1.MIGDisabled {
				t.Errorf("GPU 1: MIG %+v, want Disabled", m)
			}
			topo, err := spec.Topology()
			if err != nil {
				t.Fatalf("the scheduler would reject the topology: %v", err)
			}
			if got, want := len(topo.GPUs[0].Instances), len(tc.want); got != want {
				t.Errorf("scheduler sees %d instances, want %d", got, want)
			}
		})
	}
}

// TestMIGUUIDs checks that an instance gets its MIG device's UUID when it has
// exactly one MIG device (compute instance), and none when it has several.
func TestMIGUUIDs(t *testing.T) {
	s := stubbed(dgxh100.New())
	d := withMIG(t, s,
		gi{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 0, 4}, // GPU instance 0: one MIG device
		gi{nvml.GPU_INSTANCE_PROFILE_3_SLICE, 4, 4}, // GPU instance 1: two MIG devices
	)
	migs := []struct {
		gi   int
		uuid string
	}{{0, "MIG-aaaa"}, {1, "MIG-bbbb"}, {1, "MIG-cccc"}}
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	d.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i >= len(migs) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		m := migs[i]
		return &mock.Device{
			GetGpuInstanceIdFunc: func() (int, nvml.Return) { return m.gi, nvml.SUCCESS },
			GetUUIDFunc:          func() (string, nvml.Return) { return m.uuid, nvml.SUCCESS },
		}, nvml.SUCCESS
	}
	spec, _, err := Discover(s, Options{HostFS: fstest.MapFS{}})
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	want := []tesserav1alpha1.MIGInstance{{Profile: "3g.40gb", Start: 0, UUID: "MIG-aaaa"}, {Profile: "3g.40gb", Start: 4}}
	if got := spec.GPUs[0].MIG.Instances; !reflect.DeepEqual(got, want) {
		t.Errorf("MIG instances %+v, want %+v", got, want)
	}
}

// TestMIGErrors checks that MIG layouts that cannot be read fail discovery
// (a MIG GPU published without its instances would be wrong) and that the
// permission error says what is missing.
func TestMIGErrors(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(d *server.Device)
		wantErr error
		wantMsg string
	}{
		{
			name: "listing instances not permitted",
			break_: func(d *server.Device) {
				d.GetGpuInstancesFunc = func(*nvml.GpuInstanceProfileInfo) ([]nvml.GpuInstance, nvml.Return) {
					return nil, nvml.ERROR_NO_PERMISSION
				}
			},
			wantErr: nvml.ERROR_NO_PERMISSION,
			wantMsg: "mig/monitor",
		},
		{
			name: "profile query fails",
			break_: func(d *server.Device) {
				d.GetGpuInstanceProfileInfoFunc = func(int) (nvml.GpuInstanceProfileInfo, nvml.Return) {
					return nvml.GpuInstanceProfileInfo{}, nvml.ERROR_UNKNOWN
				}
			},
			wantErr: nvml.ERROR_UNKNOWN,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stubbed(dgxh100.New())
			d := withMIG(t, s, gi{nvml.GPU_INSTANCE_PROFILE_7_SLICE, 0, 8})
			tc.break_(d)
			_, _, err := Discover(s, Options{HostFS: fstest.MapFS{}})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Discover error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
		})
	}
}

// TestMIGMemoryGB checks the profile-name memory sizes against the names
// NVIDIA gives the profiles, from the profile's and the GPU's memory.
func TestMIGMemoryGB(t *testing.T) {
	tests := []struct {
		name       string
		totalMiB   uint64
		profileMiB uint64
		want       uint64
	}{
		{"A100-40GB 1g", 40960, 4864, 5},
		{"A100-40GB 3g", 40960, 19968, 20},
		{"A100-80GB 7g", 81920, 80384, 80},
		{"H100 1g with less than 10 GiB", 81559, 9984, 10},
		{"H100 3g", 81559, 40448, 40},
		{"H200 1g", 143771, 17920, 18},
		{"H200 3g", 143771, 71680, 71},
		{"B200 1g", 183359, 22784, 23},
		{"unknown total", 0, 10240, 10},
	}
	for _, tc := range tests {
		if got := migMemoryGB(tc.totalMiB<<20, tc.profileMiB); got != tc.want {
			t.Errorf("%s: migMemoryGB = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestParseMIGLayout checks the --mig-layout values.
func TestParseMIGLayout(t *testing.T) {
	tests := []struct {
		in      string
		want    MIGLayout
		wantErr bool
	}{
		{"", MIGLayoutStatic, false},
		{"static", MIGLayoutStatic, false},
		{"dynamic", MIGLayoutDynamic, false},
		{"Dynamic", "", true},
		{"auto", "", true},
	}
	for _, tc := range tests {
		got, err := ParseMIGLayout(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseMIGLayout(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
