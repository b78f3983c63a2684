package gpu

import (
	"slices"
	"testing"
)

func TestLookupProduct(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		// Canonical GPU Feature Discovery names.
		{in: "NVIDIA-A100-SXM4-40GB", want: "NVIDIA-A100-SXM4-40GB", wantOK: true},
		{in: "NVIDIA-A100-SXM4-80GB", want: "NVIDIA-A100-SXM4-80GB", wantOK: true},
		{in: "NVIDIA-A100-PCIE-40GB", want: "NVIDIA-A100-PCIE-40GB", wantOK: true},
		{in: "NVIDIA-A100-80GB-PCIe", want: "NVIDIA-A100-80GB-PCIe", wantOK: true},
		{in: "NVIDIA-H100-80GB-HBM3", want: "NVIDIA-H100-80GB-HBM3", wantOK: true},
		{in: "NVIDIA-H100-PCIe", want: "NVIDIA-H100-PCIe", wantOK: true},
		{in: "NVIDIA-H100-NVL", want: "NVIDIA-H100-NVL", wantOK: true},
		{in: "NVIDIA-H200", want: "NVIDIA-H200", wantOK: true},
		{in: "NVIDIA-H200-NVL", want: "NVIDIA-H200-NVL", wantOK: true},
		{in: "NVIDIA-B200", want: "NVIDIA-B200", wantOK: true},
		// Case-insensitive.
		{in: "nvidia-a100-sxm4-40gb", want: "NVIDIA-A100-SXM4-40GB", wantOK: true},
		{in: "NVIDIA-A100-80GB-PCIE", want: "NVIDIA-A100-80GB-PCIe", wantOK: true},
		{in: "NVIDIA-H100-PCIE", want: "NVIDIA-H100-PCIe", wantOK: true},
		// NVML names with spaces.
		{in: "NVIDIA A100-SXM4-80GB", want: "NVIDIA-A100-SXM4-80GB", wantOK: true},
		{in: "NVIDIA A100-PCIE-40GB", want: "NVIDIA-A100-PCIE-40GB", wantOK: true},
		{in: "NVIDIA A100 80GB PCIe", want: "NVIDIA-A100-80GB-PCIe", wantOK: true},
		{in: "NVIDIA H100 80GB HBM3", want: "NVIDIA-H100-80GB-HBM3", wantOK: true},
		{in: "NVIDIA H100 PCIe", want: "NVIDIA-H100-PCIe", wantOK: true},
		{in: "NVIDIA H100 NVL", want: "NVIDIA-H100-NVL", wantOK: true},
		{in: "NVIDIA H200", want: "NVIDIA-H200", wantOK: true},
		{in: "NVIDIA H200 NVL", want: "NVIDIA-H200-NVL", wantOK: true},
		{in: "  NVIDIA  B200 ", want: "NVIDIA-B200", wantOK: true},
		{in: "NVIDIA_B200", want: "NVIDIA-B200", wantOK: true},
		// Decorated GPU Feature Discovery values and missing vendor prefix.
		{in: "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", want: "NVIDIA-A100-SXM4-40GB", wantOK: true},
		{in: "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb", want: "NVIDIA-H100-80GB-HBM3", wantOK: true},
		{in: "NVIDIA-H100-80GB-HBM3-SHARED", want: "NVIDIA-H100-80GB-HBM3", wantOK: true},
		{in: "NVIDIA-H200-SHARED", want: "NVIDIA-H200", wantOK: true},
		{in: "A100-SXM4-80GB", want: "NVIDIA-A100-SXM4-80GB", wantOK: true},
		{in: "h100 nvl", want: "NVIDIA-H100-NVL", wantOK: true},
		// Unknown products are plain GPUs, not errors.
		{in: "P100"},
		{in: "T4"},
		{in: "V100M16"},
		{in: "G2"},
		{in: "Tesla-V100-SXM2-16GB"},
		{in: "Tesla-T4-SHARED"},
		{in: "NVIDIA-H100"},
		{in: "NVIDIA"},
		{in: "-SHARED"},
		{in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := LookupProduct(tt.in)
			if ok != tt.wantOK || got.Name != tt.want {
				t.Errorf("LookupProduct(%q) = %q, %v; want %q, %v", tt.in, got.Name, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCatalog(t *testing.T) {
	tests := []struct {
		name      string
		memoryMiB int64
		sxm, nvl  bool
		profiles  []string
	}{
		{"NVIDIA-A100-SXM4-40GB", 40960, true, false, []string{"1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"}},
		{"NVIDIA-A100-PCIE-40GB", 40960, false, false, []string{"1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"}},
		{"NVIDIA-A100-SXM4-80GB", 81920, true, false, []string{"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"}},
		{"NVIDIA-A100-80GB-PCIe", 81920, false, false, []string{"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"}},
		{"NVIDIA-H100-80GB-HBM3", 81559, true, false, []string{"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"}},
		{"NVIDIA-H100-PCIe", 81559, false, false, []string{"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"}},
		{"NVIDIA-H100-NVL", 95830, false, true, []string{"1g.12gb", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"}},
		{"NVIDIA-H200", 143771, true, false, []string{"1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"}},
		{"NVIDIA-H200-NVL", 143771, false, true, []string{"1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"}},
		{"NVIDIA-B200", 183359, true, false, []string{"1g.23gb", "1g.45gb", "2g.45gb", "3g.90gb", "4g.90gb", "7g.180gb"}},
	}
	if got := len(Products()); got != len(tests) {
		t.Errorf("catalog has %d products, test knows %d", got, len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := LookupProduct(tt.name)
			if !ok {
				t.Fatalf("not in catalog")
			}
			if p.MemoryMiB != tt.memoryMiB || p.SXM != tt.sxm || p.NVLBridge != tt.nvl {
				t.Errorf("got memory %d sxm %v nvl %v, want %d %v %v", p.MemoryMiB, p.SXM, p.NVLBridge, tt.memoryMiB, tt.sxm, tt.nvl)
			}
			var names []string
			for _, m := range p.MIGProfiles {
				names = append(names, m.Name)
			}
			if !slices.Equal(names, tt.profiles) {
				t.Errorf("profiles %v, want %v", names, tt.profiles)
			}
			if !p.MIGCapable() {
				t.Errorf("MIGCapable() = false")
			}
		})
	}
}

func TestProductsSortedAndCopied(t *testing.T) {
	ps := Products()
	if !slices.IsSortedFunc(ps, func(a, b Product) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	}) {
		t.Errorf("Products() not sorted by name")
	}
	// Changing what the catalog hands out must not change the catalog.
	ps[0].MIGProfiles[0].Starts[0] = 99
	ps[0].MIGProfiles[0].Name = "broken"
	p, _ := LookupProduct(ps[0].Name)
	p.MIGProfiles[1].Starts[0] = 42
	again, _ := LookupProduct(ps[0].Name)
	if again.MIGProfiles[0].Starts[0] != 0 || again.MIGProfiles[0].Name == "broken" || again.MIGProfiles[1].Starts[0] != 0 {
		t.Errorf("catalog was modified through a returned copy: %+v", again.MIGProfiles[:2])
	}
}

func TestProductProfile(t *testing.T) {
	p, _ := LookupProduct("NVIDIA-A100-SXM4-80GB")
	tests := []struct {
		name   string
		want   string
		wantOK bool
	}{
		{"3g.40gb", "3g.40gb", true},
		{"3G.40GB", "3g.40gb", true},
		{"1g.20gb", "1g.20gb", true},
		{"3g.20gb", "", false},
		{"1g.10gb+me", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := p.Profile(tt.name)
		if ok != tt.wantOK || got.Name != tt.want {
			t.Errorf("Profile(%q) = %q, %v; want %q, %v", tt.name, got.Name, ok, tt.want, tt.wantOK)
		}
	}
	var plain Product
	if _, ok := plain.Profile("1g.5gb"); ok || plain.MIGCapable() {
		t.Errorf("a product without profiles offers MIG")
	}
}
