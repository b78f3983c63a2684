package agent

import (
	"strings"
	"unicode"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// productMemoryTolerance is how far (as a fraction) the memory NVML reports
// may be from a catalog product's for productName to accept the product by
// a prefix of the NVML name.
const productMemoryTolerance = 0.02

// gfdName spells an NVML device name the way NVIDIA GPU Feature Discovery
// writes it into the nvidia.com/gpu.product label: characters a label value
// cannot hold are dropped and each run of blanks becomes one "-", so that
// "NVIDIA H100 80GB HBM3" becomes "NVIDIA-H100-80GB-HBM3".
func gfdName(name string) string {
	var b strings.Builder
	blank := false
	for _, r := range strings.TrimSpace(name) {
		switch {
		case unicode.IsSpace(r):
			blank = true
			continue
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' || r == '.'):
		default:
			continue
		}
		if blank && b.Len() > 0 {
			b.WriteByte('-')
		}
		blank = false
		b.WriteRune(r)
	}
	return b.String()
}

// productName returns the product name to publish for a GPU that NVML calls
// nvmlName and that has memoryMiB of memory (0 if unknown).
//
// The scheduler looks the name up in its catalog to learn the GPU's MIG
// profiles and wiring, so a name the catalog knows is published in the
// catalog's spelling. gpu.LookupProduct already accepts NVML's spelling; when
// it does not know the name, the longest dash-separated prefix of the GFD
// form that the catalog knows is used, but only if that product's memory is
// within productMemoryTolerance of what NVML reports. That maps decorated
// names ("NVIDIA H200 141GB HBM3e", as NVIDIA's NVML mocks call the H200)
// onto the product while never mistaking a different memory variant for it.
// Anything else is published in GFD form, which the scheduler treats as a
// plain GPU without MIG geometry of its own.
func productName(nvmlName string, memoryMiB int64) string {
	if p, ok := gpu.LookupProduct(nvmlName); ok {
		return p.Name
	}
	name := gfdName(nvmlName)
	if memoryMiB <= 0 {
		return name
	}
	parts := strings.Split(name, "-")
	for n := len(parts) - 1; n >= 2; n-- {
		p, ok := gpu.LookupProduct(strings.Join(parts[:n], "-"))
		if !ok {
			continue
		}
		diff := float64(p.MemoryMiB - memoryMiB)
		if diff < 0 {
			diff = -diff
		}
		if diff <= productMemoryTolerance*float64(p.MemoryMiB) {
			return p.Name
		}
	}
	return name
}
