package gpu

import (
	"slices"
	"strings"
	"unicode"
)

// LabelProduct is the node label in which NVIDIA GPU Feature Discovery
// publishes the GPU product name that LookupProduct understands.
const LabelProduct = "nvidia.com/gpu.product"

// Product describes one GPU model as the scheduler needs to know it. The
// catalog is deliberately small: a product it does not list is still
// schedulable as a plain GPU without MIG.
type Product struct {
	// Name is the canonical name, exactly as GPU Feature Discovery reports
	// it in the nvidia.com/gpu.product label.
	Name string
	// MemoryMiB is the device memory as the driver reports it.
	MemoryMiB int64
	// SXM is true for SXM board parts, which sit on an HGX baseboard whose
	// GPUs are connected by NVLink (through NVSwitches on 8-GPU boards).
	SXM bool
	// NVLBridge is true for NVL PCIe cards, which are connected in pairs by
	// NVLink bridges.
	NVLBridge bool
	// MIGProfiles lists the MIG profiles of a MIG-capable product, smallest
	// first; it is empty for products without MIG. Media-extension ("+me")
	// profiles are not modelled.
	MIGProfiles []MIGProfile
}

// MIGCapable reports whether the product supports MIG at all.
func (p Product) MIGCapable() bool {
	return len(p.MIGProfiles) > 0
}

// Profile returns the product's MIG profile with the given name. The name is
// matched exactly first, then ignoring case, so that "3G.40GB" typed by a
// person still resolves.
func (p Product) Profile(name string) (MIGProfile, bool) {
	if i := p.profileIndex(name); i >= 0 {
		return p.MIGProfiles[i], true
	}
	return MIGProfile{}, false
}

// profileIndex is Profile returning the position in MIGProfiles, or -1.
func (p Product) profileIndex(name string) int {
	for i := range p.MIGProfiles {
		if p.MIGProfiles[i].Name == name {
			return i
		}
	}
	for i := range p.MIGProfiles {
		if strings.EqualFold(p.MIGProfiles[i].Name, name) {
			return i
		}
	}
	return -1
}

// clone returns a deep copy, so that callers of the exported API can never
// change the catalog.
func (p Product) clone() Product {
	c := p
	c.MIGProfiles = make([]MIGProfile, len(p.MIGProfiles))
	for i, m := range p.MIGProfiles {
		m.Starts = slices.Clone(m.Starts)
		c.MIGProfiles[i] = m
	}
	return c
}

// catalog holds the known products, sorted by name. Memory sizes are those
// nvidia-smi reports for the product.
var catalog = []Product{
	{Name: "NVIDIA-A100-80GB-PCIe", MemoryMiB: 81920, MIGProfiles: sevenSliceProfiles(10, 20, 20, 40, 40, 80)},
	{Name: "NVIDIA-A100-PCIE-40GB", MemoryMiB: 40960, MIGProfiles: sevenSliceProfiles(5, 10, 10, 20, 20, 40)},
	{Name: "NVIDIA-A100-SXM4-40GB", MemoryMiB: 40960, SXM: true, MIGProfiles: sevenSliceProfiles(5, 10, 10, 20, 20, 40)},
	{Name: "NVIDIA-A100-SXM4-80GB", MemoryMiB: 81920, SXM: true, MIGProfiles: sevenSliceProfiles(10, 20, 20, 40, 40, 80)},
	{Name: "NVIDIA-B200", MemoryMiB: 183359, SXM: true, MIGProfiles: sevenSliceProfiles(23, 45, 45, 90, 90, 180)},
	{Name: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, SXM: true, MIGProfiles: sevenSliceProfiles(10, 20, 20, 40, 40, 80)},
	{Name: "NVIDIA-H100-NVL", MemoryMiB: 95830, NVLBridge: true, MIGProfiles: sevenSliceProfiles(12, 24, 24, 47, 47, 94)},
	{Name: "NVIDIA-H100-PCIe", MemoryMiB: 81559, MIGProfiles: sevenSliceProfiles(10, 20, 20, 40, 40, 80)},
	{Name: "NVIDIA-H200", MemoryMiB: 143771, SXM: true, MIGProfiles: sevenSliceProfiles(18, 35, 35, 71, 71, 141)},
	{Name: "NVIDIA-H200-NVL", MemoryMiB: 143771, NVLBridge: true, MIGProfiles: sevenSliceProfiles(18, 35, 35, 71, 71, 141)},
}

// catalogByName and catalogByKey index the catalog by canonical name and by
// normalised name. They are only read after package initialisation.
var (
	catalogByName = map[string]*Product{}
	catalogByKey  = map[string]*Product{}
)

func init() {
	for i := range catalog {
		p := &catalog[i]
		catalogByName[p.Name] = p
		catalogByKey[productKey(p.Name)] = p
	}
}

// Products returns a copy of every product in the catalog, sorted by name,
// for documentation and for the playground's pickers.
func Products() []Product {
	out := make([]Product, len(catalog))
	for i := range catalog {
		out[i] = catalog[i].clone()
	}
	return out
}

// LookupProduct finds a product by the name a node reports. It is tolerant,
// because the name reaches the scheduler by several routes:
//
//   - the canonical GPU Feature Discovery label value, matched exactly;
//   - the same ignoring case;
//   - NVML-style names with spaces ("NVIDIA A100-SXM4-80GB", as
//     nvmlDeviceGetName returns them), by turning runs of spaces and
//     underscores into one "-";
//   - GPU Feature Discovery's decorated values, by dropping a "-MIG-<profile>"
//     suffix (single MIG strategy) or a "-SHARED" suffix (time-slicing);
//   - names without the "NVIDIA-" prefix ("A100-SXM4-80GB").
//
// A product that is not found is not an error: the caller should treat it as
// a plain GPU without MIG (ok is false).
func LookupProduct(name string) (Product, bool) {
	if p := lookupProduct(name); p != nil {
		return p.clone(), true
	}
	return Product{}, false
}

// lookupProduct is LookupProduct returning a pointer into the catalog, for
// internal callers that promise not to modify it.
func lookupProduct(name string) *Product {
	if p, ok := catalogByName[name]; ok {
		return p
	}
	key := productKey(name)
	if key == "" {
		return nil
	}
	candidates := []string{key}
	if i := strings.Index(key, "-mig-"); i > 0 {
		candidates = append(candidates, key[:i])
	}
	if k, ok := strings.CutSuffix(key, "-shared"); ok && k != "" {
		candidates = append(candidates, k)
	}
	for _, k := range candidates {
		if p, ok := catalogByKey[k]; ok {
			return p
		}
		if !strings.HasPrefix(k, "nvidia-") {
			if p, ok := catalogByKey["nvidia-"+k]; ok {
				return p
			}
		}
	}
	return nil
}

// productKey normalises a product name for tolerant matching: lower case,
// surrounding blanks removed, and every run of spaces, tabs, underscores or
// dashes turned into a single "-".
func productKey(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for _, r := range strings.TrimSpace(name) {
		switch r {
		case ' ', '\t', '_', '-':
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
