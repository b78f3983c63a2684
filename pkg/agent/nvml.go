package agent

import (
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Symbols of NVML functions newer than the oldest driver the agent supports
// (R450, the first with MIG). go-nvml binds every function lazily, and
// calling one that the loaded libnvidia-ml.so lacks crashes the process, so
// each of these is looked up before it is called.
const (
	symbolNUMANodeID  = "nvmlDeviceGetNumaNodeId"
	symbolFabricInfo  = "nvmlDeviceGetGpuFabricInfo"
	symbolFabricInfoV = "nvmlDeviceGetGpuFabricInfoV"
)

// unsupported reports whether ret means that NVML cannot answer on this GPU
// or driver. Discovery treats such an answer as "unknown" and leaves the
// field out, because old drivers, PCIe cards and vGPU guests legitimately
// lack many queries.
func unsupported(ret nvml.Return) bool {
	switch ret {
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND:
		return true
	}
	return false
}

// nvmlErr turns a failed NVML call into an error that names the GPU and the
// call and wraps the nvml.Return, so that callers can test it with
// errors.Is(err, nvml.ERROR_NO_PERMISSION).
func nvmlErr(index int, call string, ret nvml.Return) error {
	return fmt.Errorf("GPU %d: %s: %w", index, call, ret)
}

// hasSymbol reports whether the loaded NVML library exports name. A library
// that cannot say (no extensions) is trusted to have it.
func hasSymbol(lib nvml.Interface, name string) bool {
	ext := lib.Extensions()
	if ext == nil {
		return true
	}
	return ext.LookupSymbol(name) == nil
}

// cString converts one of NVML's fixed-size, NUL-terminated char arrays.
func cString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}
