package agent

import (
	"errors"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
)

// TestDiscoverNUMA checks where NUMA nodes come from: NVML when it answers,
// sysfs (through the injected host file system) when it does not or when the
// driver predates nvmlDeviceGetNumaNodeId, and nothing when neither knows.
func TestDiscoverNUMA(t *testing.T) {
	// The mock's GPUs sit at 0000:00:00.0 ... 0000:07:00.0.
	sysfs := fstest.MapFS{}
	for i, n := range []string{"0\n", "0\n", "0\n", "0\n", "1\n", "1\n", "-1\n", "garbage"} {
		sysfs["sys/bus/pci/devices/0000:0"+string(rune('0'+i))+":00.0/numa_node"] = &fstest.MapFile{Data: []byte(n)}
	}
	fromSysfs := []*int32{int32p(0), int32p(0), int32p(0), int32p(0), int32p(1), int32p(1), nil, nil}
	halves := []*int32{int32p(0), int32p(0), int32p(0), int32p(0), int32p(1), int32p(1), int32p(1), int32p(1)}

	tests := []struct {
		name      string
		nvmlNUMA  func(i int) (int, nvml.Return) // nil: the stub's ERROR_NOT_SUPPORTED
		noSymbol  bool
		host      fstest.MapFS
		want      []*int32
		nvmlCalls bool
	}{
		{
			name:     "from NVML",
			nvmlNUMA: func(i int) (int, nvml.Return) { return i / 4, nvml.SUCCESS },
			host:     fstest.MapFS{},
			want:     halves,
		},
		{
			name: "NVML not supported: sysfs, where -1 and garbage are unknown",
			host: sysfs,
			want: fromSysfs,
		},
		{
			name:     "NVML fails: sysfs",
			nvmlNUMA: func(i int) (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN },
			host:     sysfs,
			want:     fromSysfs,
		},
		{
			name:     "driver without nvmlDeviceGetNumaNodeId: sysfs, NVML not called",
			nvmlNUMA: func(i int) (int, nvml.Return) { panic("called a function the driver lacks") },
			noSymbol: true,
			host:     sysfs,
			want:     fromSysfs,
		},
		{
			name: "neither knows",
			host: fstest.MapFS{},
			want: make([]*int32, 8),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stubbed(dgxh100.New())
			if tc.noSymbol {
				s.LookupSymbolFunc = func(name string) error {
					if name == symbolNUMANodeID || name == symbolFabricInfoV {
						return errors.New("missing")
					}
					return nil
				}
			}
			if tc.nvmlNUMA != nil {
				for i := range s.Devices {
					mockDevice(s, i).GetNumaNodeIdFunc = func() (int, nvml.Return) { return tc.nvmlNUMA(i) }
				}
			}
			spec, _, err := Discover(s, Options{HostFS: tc.host})
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			got := make([]*int32, len(spec.GPUs))
			for i, g := range spec.GPUs {
				got[i] = g.NUMANode
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("NUMA nodes %v, want %v", deref(got), deref(tc.want))
			}
			topo, err := spec.Topology()
			if err != nil {
				t.Fatalf("the scheduler would reject the topology: %v", err)
			}
			for i, g := range topo.GPUs {
				want := -1
				if tc.want[i] != nil {
					want = int(*tc.want[i])
				}
				if g.NUMANode != want {
					t.Errorf("scheduler sees GPU %d on NUMA node %d, want %d", i, g.NUMANode, want)
				}
			}
		})
	}
}

// deref makes NUMA node lists printable.
func deref(ns []*int32) []int {
	out := make([]int, len(ns))
	for i, n := range ns {
		out[i] = -1
		if n != nil {
			out[i] = int(*n)
		}
	}
	return out
}

// TestNormalizeBusID checks the translation of NVML's PCI addresses into the
// sysfs form used in the object and for the NUMA lookup.
func TestNormalizeBusID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"00000000:18:00.0", "0000:18:00.0"},
		{"00000000:DB:00.0", "0000:db:00.0"},
		{"00000001:3B:00.0", "0001:3b:00.0"},
		{"0000:18:00.0", "0000:18:00.0"},
		{"0001AB00:18:00.0", "1ab00:18:00.0"},
		{"", ""},
		{"junk", "junk"},
		{"zz:18:00.0", "zz:18:00.0"},
	}
	for _, tc := range tests {
		if got := normalizeBusID(tc.in); got != tc.want {
			t.Errorf("normalizeBusID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
