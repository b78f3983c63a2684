package gpu

import (
	"fmt"
	"slices"
	"testing"
)

// geometry is the placement geometry the MIG user guide gives for the
// 7-compute/8-memory-slice products, in catalog profile order.
var geometry = []struct {
	compute, size int
	starts        []int
}{
	{1, 1, []int{0, 1, 2, 3, 4, 5, 6}}, // 1g
	{1, 2, []int{0, 2, 4, 6}},          // 1g with double memory
	{2, 2, []int{0, 2, 4}},             // 2g
	{3, 4, []int{0, 4}},                // 3g
	{4, 4, []int{0}},                   // 4g
	{7, 8, []int{0}},                   // 7g
}

// profileMemory is each product's profile memory sizes in catalog order.
var profileMemory = map[string][]int{
	"NVIDIA-A100-SXM4-40GB": {5, 10, 10, 20, 20, 40},
	"NVIDIA-A100-PCIE-40GB": {5, 10, 10, 20, 20, 40},
	"NVIDIA-A100-SXM4-80GB": {10, 20, 20, 40, 40, 80},
	"NVIDIA-A100-80GB-PCIe": {10, 20, 20, 40, 40, 80},
	"NVIDIA-H100-80GB-HBM3": {10, 20, 20, 40, 40, 80},
	"NVIDIA-H100-PCIe":      {10, 20, 20, 40, 40, 80},
	"NVIDIA-H100-NVL":       {12, 24, 24, 47, 47, 94},
	"NVIDIA-H200":           {18, 35, 35, 71, 71, 141},
	"NVIDIA-H200-NVL":       {18, 35, 35, 71, 71, 141},
	"NVIDIA-B200":           {23, 45, 45, 90, 90, 180},
}

func TestMIGProfileGeometry(t *testing.T) {
	for _, p := range Products() {
		mem, ok := profileMemory[p.Name]
		if !ok {
			t.Errorf("%s: no expected profiles in the test", p.Name)
			continue
		}
		if len(p.MIGProfiles) != len(geometry) {
			t.Fatalf("%s: %d profiles, want %d", p.Name, len(p.MIGProfiles), len(geometry))
		}
		for i, m := range p.MIGProfiles {
			g := geometry[i]
			want := fmt.Sprintf("%dg.%dgb", g.compute, mem[i])
			if m.Name != want || m.ComputeSlices != g.compute || m.MemorySlices != g.size || m.MemoryGB != mem[i] || !slices.Equal(m.Starts, g.starts) {
				t.Errorf("%s profile %d = %+v, want %s compute %d size %d starts %v", p.Name, i, m, want, g.compute, g.size, g.starts)
			}
		}
	}
}

// TestMIGLegalStarts places every profile of every product at every memory
// slice of an empty MIG-dynamic GPU: exactly the documented starts succeed.
func TestMIGLegalStarts(t *testing.T) {
	for _, p := range Products() {
		for i, m := range p.MIGProfiles {
			var got []int
			for start := -1; start <= MIGMemorySlices; start++ {
				s := NewNodeState(migTopology(p.Name, 1, MIGDynamic))
				if s.Add(Assignment{MIG: []MIGSlot{{GPU: 0, Profile: m.Name, Start: start}}}) == nil {
					got = append(got, start)
				}
			}
			if !slices.Equal(got, geometry[i].starts) {
				t.Errorf("%s %s: Add accepted starts %v, want %v", p.Name, m.Name, got, geometry[i].starts)
			}
			for start := 0; start < MIGMemorySlices; start++ {
				if m.LegalStart(start) != slices.Contains(geometry[i].starts, start) {
					t.Errorf("%s %s: LegalStart(%d) = %v", p.Name, m.Name, start, m.LegalStart(start))
				}
			}
		}
	}
}

// TestMIGPairs places every pair of legal placements on one MIG-dynamic GPU
// of every product: the second is refused exactly when the memory ranges
// overlap.
func TestMIGPairs(t *testing.T) {
	type placement struct {
		profile     string
		start, size int
	}
	for _, p := range Products() {
		var all []placement
		for i, m := range p.MIGProfiles {
			for _, s := range geometry[i].starts {
				all = append(all, placement{m.Name, s, geometry[i].size})
			}
		}
		for _, a := range all {
			for _, b := range all {
				s := NewNodeState(migTopology(p.Name, 1, MIGDynamic))
				mustAdd(t, s, Assignment{MIG: []MIGSlot{{GPU: 0, Profile: a.profile, Start: a.start}}})
				err := s.Add(Assignment{MIG: []MIGSlot{{GPU: 0, Profile: b.profile, Start: b.start}}})
				overlap := a.start < b.start+b.size && b.start < a.start+a.size
				if overlap != (err != nil) {
					t.Errorf("%s: %s@%d then %s@%d: err = %v, overlap = %v", p.Name, a.profile, a.start, b.profile, b.start, err, overlap)
				}
			}
		}
	}
}

func TestMIGLayouts(t *testing.T) {
	tests := []struct {
		name    string
		product string
		slots   []MIGSlot
		wantErr string // on the last slot
	}{
		{
			name:    "4g plus 3g fills A100",
			product: "NVIDIA-A100-SXM4-40GB",
			slots:   []MIGSlot{{0, "4g.20gb", 0}, {0, "3g.20gb", 4}},
		},
		{
			name:    "seven 1g",
			product: "NVIDIA-H100-80GB-HBM3",
			slots:   []MIGSlot{{0, "1g.10gb", 0}, {0, "1g.10gb", 1}, {0, "1g.10gb", 2}, {0, "1g.10gb", 3}, {0, "1g.10gb", 4}, {0, "1g.10gb", 5}, {0, "1g.10gb", 6}},
		},
		{
			name:    "three 2g and a 1g",
			product: "NVIDIA-H200",
			slots:   []MIGSlot{{0, "2g.35gb", 0}, {0, "2g.35gb", 2}, {0, "2g.35gb", 4}, {0, "1g.18gb", 6}},
		},
		{
			name:    "3g 2g and double-memory 1g",
			product: "NVIDIA-B200",
			slots:   []MIGSlot{{0, "3g.90gb", 0}, {0, "2g.45gb", 4}, {0, "1g.45gb", 6}},
		},
		{
			name:    "4g over 3g",
			product: "NVIDIA-A100-SXM4-40GB",
			slots:   []MIGSlot{{0, "3g.20gb", 0}, {0, "4g.20gb", 0}},
			wantErr: "overlaps",
		},
		{
			name:    "1g beside 7g",
			product: "NVIDIA-A100-SXM4-80GB",
			slots:   []MIGSlot{{0, "7g.80gb", 0}, {0, "1g.10gb", 6}},
			wantErr: "overlaps",
		},
		{
			name:    "double 1g at 6 under 3g at 4",
			product: "NVIDIA-A100-SXM4-40GB",
			slots:   []MIGSlot{{0, "1g.10gb", 6}, {0, "3g.20gb", 4}},
			wantErr: "overlaps",
		},
		{
			name:    "3g at 2 is illegal",
			product: "NVIDIA-H100-NVL",
			slots:   []MIGSlot{{0, "3g.47gb", 2}},
			wantErr: "cannot start at memory slice 2",
		},
		{
			name:    "same instance twice",
			product: "NVIDIA-A100-SXM4-40GB",
			slots:   []MIGSlot{{0, "2g.10gb", 2}, {0, "2g.10gb", 2}},
			wantErr: "overlaps",
		},
		{
			name:    "profile of another product",
			product: "NVIDIA-A100-SXM4-40GB",
			slots:   []MIGSlot{{0, "3g.40gb", 0}},
			wantErr: `"3g.40gb" is not offered by NVIDIA-A100-SXM4-40GB`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewNodeState(migTopology(tt.product, 1, MIGDynamic))
			last := len(tt.slots) - 1
			for _, slot := range tt.slots[:last] {
				mustAdd(t, s, Assignment{MIG: []MIGSlot{slot}})
			}
			err := s.Add(Assignment{MIG: tt.slots[last:]})
			if tt.wantErr == "" {
				wantErr(t, err)
				// Free capacity is the unused compute, even where no
				// instance could be placed any more.
				used := 0
				for _, slot := range tt.slots {
					g, _, _ := parseProfileName(slot.Profile)
					used += g
				}
				if want := slicesMilli(MIGComputeSlices - used); s.FreeMilli() != want {
					t.Errorf("FreeMilli() = %d, want %d", s.FreeMilli(), want)
				}
				return
			}
			wantErr(t, err, "gpu 0", tt.wantErr)
		})
	}
}

func TestParseMIGResource(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"nvidia.com/mig-3g.40gb", "3g.40gb", true},
		{"nvidia.com/mig-1g.5gb", "1g.5gb", true},
		{"nvidia.com/mig-7g.141gb", "7g.141gb", true},
		{"nvidia.com/gpu", "", false},
		{"nvidia.com/mig-", "", false},
		{"nvidia.com/mig-3g", "", false},
		{"nvidia.com/mig-3g.40", "", false},
		{"nvidia.com/mig-g.40gb", "", false},
		{"nvidia.com/mig-0g.40gb", "", false},
		{"nvidia.com/mig-3g.40gb+me", "", false},
		{"nvidia.com/mig--3g.40gb", "", false},
		{"example.com/mig-3g.40gb", "", false},
		{"cpu", "", false},
	}
	for _, tt := range tests {
		got, ok := ParseMIGResource(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseMIGResource(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
		if ok {
			if back := MIGResourceName(got); back != tt.in {
				t.Errorf("MIGResourceName(%q) = %q, want %q", got, back, tt.in)
			}
		}
	}
}

func TestMIGProfileMilli(t *testing.T) {
	p, _ := LookupProduct("NVIDIA-A100-SXM4-80GB")
	want := []int64{142, 142, 285, 428, 571, 1000}
	for i, m := range p.MIGProfiles {
		if got := m.Milli(); got != want[i] {
			t.Errorf("%s.Milli() = %d, want %d", m.Name, got, want[i])
		}
	}
}

func TestInferProfile(t *testing.T) {
	tests := []struct {
		name        string
		size        int
		starts      []int
		wantOK      bool
		wantCompute int
	}{
		{"1g.6gb", 1, []int{0, 1, 2, 3, 4, 5, 6}, true, 1},
		{"2g.12gb", 2, []int{0, 2, 4}, true, 2},
		{"3g.96gb", 4, []int{0, 4}, true, 3},
		{"4g.96gb", 4, []int{0}, true, 4},
		{"7g.192gb", 8, []int{0}, true, 7},
		{"5g.50gb", 0, nil, false, 0},
		{"banana", 0, nil, false, 0},
	}
	for _, tt := range tests {
		p, ok := inferProfile(tt.name)
		if ok != tt.wantOK || p.MemorySlices != tt.size || !slices.Equal(p.Starts, tt.starts) || p.ComputeSlices != tt.wantCompute {
			t.Errorf("inferProfile(%q) = %+v, %v", tt.name, p, ok)
		}
	}
}
