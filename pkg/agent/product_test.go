package agent

import "testing"

// TestProductName checks how NVML device names become published product
// names: the catalog's spelling when the catalog knows the product, GPU
// Feature Discovery's spelling otherwise.
func TestProductName(t *testing.T) {
	tests := []struct {
		name      string
		nvml      string
		memoryMiB int64
		want      string
	}{
		{"H100 SXM", "NVIDIA H100 80GB HBM3", 81559, "NVIDIA-H100-80GB-HBM3"},
		{"A100 SXM", "NVIDIA A100-SXM4-80GB", 81920, "NVIDIA-A100-SXM4-80GB"},
		{"A100 PCIe, catalog case", "NVIDIA A100 80GB PCIe", 81920, "NVIDIA-A100-80GB-PCIe"},
		{"H100 NVL", "NVIDIA H100 NVL", 95830, "NVIDIA-H100-NVL"},
		{"H200", "NVIDIA H200", 143771, "NVIDIA-H200"},
		{"decorated H200, memory matches", "NVIDIA H200 141GB HBM3e", 144384, "NVIDIA-H200"},
		{"decorated H200, memory unknown", "NVIDIA H200 141GB HBM3e", 0, "NVIDIA-H200-141GB-HBM3e"},
		{"prefix known but memory differs", "NVIDIA B200 96GB", 98304, "NVIDIA-B200-96GB"},
		{"not in the catalog", "Tesla V100-SXM2-16GB", 16160, "Tesla-V100-SXM2-16GB"},
		{"blank runs", "  NVIDIA  L40S ", 46068, "NVIDIA-L40S"},
		{"characters a label cannot hold", "NVIDIA RTX A6000 (rev 2)", 49140, "NVIDIA-RTX-A6000-rev-2"},
		{"empty", "", 0, ""},
	}
	for _, tc := range tests {
		if got := productName(tc.nvml, tc.memoryMiB); got != tc.want {
			t.Errorf("%s: productName(%q, %d) = %q, want %q", tc.name, tc.nvml, tc.memoryMiB, got, tc.want)
		}
	}
}
