package gpu

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestDefaultTopology(t *testing.T) {
	tests := []struct {
		product     string
		count       int
		wantProduct string
		wantMemory  int64
		numa        []int
		domains     []string
	}{
		{
			product: "NVIDIA-A100-SXM4-80GB", count: 8, wantProduct: "NVIDIA-A100-SXM4-80GB", wantMemory: 81920,
			numa:    []int{0, 0, 0, 0, 1, 1, 1, 1},
			domains: []string{"nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0"},
		},
		{
			product: "NVIDIA H100 80GB HBM3", count: 8, wantProduct: "NVIDIA-H100-80GB-HBM3", wantMemory: 81559,
			numa:    []int{0, 0, 0, 0, 1, 1, 1, 1},
			domains: []string{"nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0"},
		},
		{
			product: "NVIDIA-B200", count: 16, wantProduct: "NVIDIA-B200", wantMemory: 183359,
			numa:    []int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
			domains: []string{"nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-0", "nvswitch-1", "nvswitch-1", "nvswitch-1", "nvswitch-1", "nvswitch-1", "nvswitch-1", "nvswitch-1", "nvswitch-1"},
		},
		{
			product: "NVIDIA-A100-SXM4-40GB", count: 4, wantProduct: "NVIDIA-A100-SXM4-40GB", wantMemory: 40960,
			numa:    []int{0, 0, 0, 0},
			domains: []string{"nvlink-0", "nvlink-0", "nvlink-0", "nvlink-0"},
		},
		{
			product: "NVIDIA-H200", count: 2, wantProduct: "NVIDIA-H200", wantMemory: 143771,
			numa:    []int{0, 0},
			domains: []string{"nvlink-0", "nvlink-0"},
		},
		{
			product: "NVIDIA-H100-PCIe", count: 4, wantProduct: "NVIDIA-H100-PCIe", wantMemory: 81559,
			numa:    []int{0, 0, 1, 1},
			domains: []string{"", "", "", ""},
		},
		{
			product: "NVIDIA-A100-80GB-PCIe", count: 2, wantProduct: "NVIDIA-A100-80GB-PCIe", wantMemory: 81920,
			numa:    []int{0, 0},
			domains: []string{"", ""},
		},
		{
			product: "T4", count: 5, wantProduct: "T4",
			numa:    []int{0, 0, 0, 1, 1},
			domains: []string{"", "", "", "", ""},
		},
		{
			product: "P100", count: 1, wantProduct: "P100",
			numa:    []int{0},
			domains: []string{""},
		},
		{
			product: "NVIDIA-H100-NVL", count: 8, wantProduct: "NVIDIA-H100-NVL", wantMemory: 95830,
			numa:    []int{0, 0, 0, 0, 1, 1, 1, 1},
			domains: []string{"nvl-0", "nvl-0", "nvl-1", "nvl-1", "nvl-2", "nvl-2", "nvl-3", "nvl-3"},
		},
		{
			product: "NVIDIA H200 NVL", count: 3, wantProduct: "NVIDIA-H200-NVL", wantMemory: 143771,
			numa:    []int{0, 0, 0},
			domains: []string{"nvl-0", "nvl-0", "nvl-1"},
		},
		{product: "NVIDIA-B200", count: 0},
	}
	for _, tt := range tests {
		topo := DefaultTopology(tt.product, tt.count)
		if err := topo.Validate(); err != nil {
			t.Errorf("DefaultTopology(%q, %d) is invalid: %v", tt.product, tt.count, err)
		}
		if len(topo.GPUs) != tt.count {
			t.Fatalf("DefaultTopology(%q, %d) has %d GPUs", tt.product, tt.count, len(topo.GPUs))
		}
		var numa []int
		var domains []string
		for i, g := range topo.GPUs {
			if g.Index != i || g.Product != tt.wantProduct || g.MemoryMiB != tt.wantMemory || g.MIG != MIGDisabled || g.UUID != "" {
				t.Errorf("DefaultTopology(%q, %d) GPU %d = %+v", tt.product, tt.count, i, g)
			}
			numa = append(numa, g.NUMANode)
			domains = append(domains, g.Domain)
		}
		if !slices.Equal(numa, tt.numa) || !slices.Equal(domains, tt.domains) {
			t.Errorf("DefaultTopology(%q, %d): NUMA %v domains %q, want %v %q", tt.product, tt.count, numa, domains, tt.numa, tt.domains)
		}
	}
}

func TestTopologyValidate(t *testing.T) {
	a100 := "NVIDIA-A100-SXM4-40GB"
	tests := []struct {
		name string
		gpus []GPU
		want []string // fragments of the error; none for valid
	}{
		{name: "empty"},
		{
			name: "valid MIG layout",
			gpus: []GPU{{Index: 0, Product: a100, MIG: MIGStatic, Instances: []MIGInstance{{"4g.20gb", 0}, {"3g.20gb", 4}}}, {Index: 1, Product: a100}},
		},
		{
			name: "unknown product keeps inferred profiles",
			gpus: []GPU{{Index: 0, Product: "NVIDIA-GB300", MIG: MIGStatic, Instances: []MIGInstance{{"3g.139gb", 0}, {"3g.139gb", 4}}}},
		},
		{
			name: "duplicate index",
			gpus: []GPU{{Index: 3}, {Index: 1}, {Index: 3}},
			want: []string{"gpu 3", "listed twice"},
		},
		{
			name: "negative index",
			gpus: []GPU{{Index: -2}},
			want: []string{"gpus[0]", "-2"},
		},
		{
			name: "duplicate UUID",
			gpus: []GPU{{Index: 0, UUID: "GPU-a"}, {Index: 1, UUID: "GPU-a"}},
			want: []string{"gpu 1", `"GPU-a"`, "gpu 0"},
		},
		{
			name: "bad NUMA node",
			gpus: []GPU{{Index: 4, NUMANode: -3}},
			want: []string{"gpu 4", "-3"},
		},
		{
			name: "negative memory",
			gpus: []GPU{{Index: 4, MemoryMiB: -1}},
			want: []string{"gpu 4", "-1 MiB"},
		},
		{
			name: "instances with MIG disabled",
			gpus: []GPU{{Index: 2, Product: a100, Instances: []MIGInstance{{"7g.40gb", 0}}}},
			want: []string{"gpu 2", "MIG is disabled"},
		},
		{
			name: "invalid mode",
			gpus: []GPU{{Index: 2, Product: a100, MIG: 7}},
			want: []string{"gpu 2", "invalid MIG mode 7"},
		},
		{
			name: "MIG-dynamic GPU without instances",
			gpus: []GPU{{Index: 0}, {Index: 1, Product: "NVIDIA-A100-SXM4-80GB", MIG: MIGDynamic}},
		},
		{
			name: "unknown profile for known product",
			gpus: []GPU{{Index: 5, Product: a100, MIG: MIGStatic, Instances: []MIGInstance{{"3g.40gb", 0}}}},
			want: []string{"gpu 5", `"3g.40gb"`, a100},
		},
		{
			name: "malformed profile for unknown product",
			gpus: []GPU{{Index: 5, Product: "X", MIG: MIGStatic, Instances: []MIGInstance{{"big", 0}}}},
			want: []string{"gpu 5", `"big"`},
		},
		{
			name: "illegal start",
			gpus: []GPU{{Index: 1, Product: a100, MIG: MIGDynamic, Instances: []MIGInstance{{"3g.20gb", 2}}}},
			want: []string{"gpu 1", "3g.20gb", "memory slice 2"},
		},
		{
			name: "overlap",
			gpus: []GPU{{Index: 6, Product: a100, MIG: MIGStatic, Instances: []MIGInstance{{"2g.10gb", 2}, {"4g.20gb", 0}}}},
			want: []string{"gpu 6", "4g.20gb at 0", "overlaps"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Topology{GPUs: tt.gpus}.Validate()
			wantErr(t, err, tt.want...)
		})
	}
}

func TestValidateRejectsMIGOnNonMIGProduct(t *testing.T) {
	// The catalog has no product without MIG, so fake one for the check.
	catalogByKey["nvidia-test-nomig"] = &Product{Name: "NVIDIA-TEST-NOMIG"}
	defer delete(catalogByKey, "nvidia-test-nomig")
	err := Topology{GPUs: []GPU{{Index: 1, Product: "NVIDIA-TEST-NOMIG", MIG: MIGStatic}}}.Validate()
	wantErr(t, err, "gpu 1", "does not support MIG")
}

func TestMIGModeText(t *testing.T) {
	for _, m := range []MIGMode{MIGDisabled, MIGStatic, MIGDynamic} {
		b, err := m.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%d): %v", m, err)
		}
		var back MIGMode
		if err := back.UnmarshalText(b); err != nil || back != m {
			t.Errorf("round trip of %v gave %v, %v", m, back, err)
		}
	}
	if _, err := MIGMode(9).MarshalText(); err == nil {
		t.Errorf("MarshalText accepted mode 9")
	}
	var m MIGMode
	wantErr(t, m.UnmarshalText([]byte("sometimes")), `"sometimes"`)

	// A GPU with MIG disabled encodes without a mig field and decodes back.
	topo := Topology{GPUs: []GPU{{Index: 0, NUMANode: 1}, {Index: 1, MIG: MIGDynamic, Instances: []MIGInstance{{"1g.10gb", 6}}}}}
	b, err := json.Marshal(topo)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"gpus":[{"index":0,"numaNode":1},{"index":1,"numaNode":0,"mig":"dynamic","instances":[{"profile":"1g.10gb","start":6}]}]}`
	if string(b) != want {
		t.Errorf("json = %s\nwant   %s", b, want)
	}
	var back Topology
	if err := json.Unmarshal(b, &back); err != nil || back.GPUs[1].MIG != MIGDynamic || back.GPUs[0].MIG != MIGDisabled {
		t.Errorf("decoded %+v, %v", back, err)
	}
}
