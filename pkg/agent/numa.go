package agent

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
)

// sysfsPCIDevices is where Linux lists PCI devices, relative to the host
// file system root.
const sysfsPCIDevices = "sys/bus/pci/devices"

// normalizeBusID turns NVML's PCI address ("00000000:18:00.0", an 8-digit
// domain in upper case) into the form Linux, sysfs and Kubernetes use
// ("0000:18:00.0": a 4-digit domain, lower case). An address that does not
// parse is returned lower-cased, and "" stays "".
func normalizeBusID(id string) string {
	id = strings.ToLower(strings.TrimSpace(id))
	domain, rest, ok := strings.Cut(id, ":")
	if !ok || !strings.Contains(rest, ":") {
		return id
	}
	d, err := strconv.ParseUint(domain, 16, 32)
	if err != nil {
		return id
	}
	return fmt.Sprintf("%04x:%s", d, rest)
}

// numaNode finds the NUMA node of a GPU: from NVML where the driver has
// nvmlDeviceGetNumaNodeId (R535 and later) and answers, otherwise from the
// numa_node file sysfs keeps for the GPU's PCI device. nil means unknown,
// which is also what Linux's -1 ("no NUMA affinity") becomes.
func numaNode(logger klog.Logger, lib nvml.Interface, dev nvml.Device, index int, busID string, host fs.FS) *int32 {
	if hasSymbol(lib, symbolNUMANodeID) {
		n, ret := dev.GetNumaNodeId()
		switch {
		case ret == nvml.SUCCESS && n >= 0:
			v := int32(n)
			return &v
		case ret == nvml.SUCCESS, unsupported(ret):
		default:
			logger.V(2).Info("NVML could not tell the NUMA node; trying sysfs", "gpu", index, "err", ret)
		}
	}
	return sysfsNUMANode(logger, host, index, busID)
}

// sysfsNUMANode reads /sys/bus/pci/devices/<busID>/numa_node below host.
func sysfsNUMANode(logger klog.Logger, host fs.FS, index int, busID string) *int32 {
	if host == nil || busID == "" {
		return nil
	}
	b, err := fs.ReadFile(host, path.Join(sysfsPCIDevices, busID, "numa_node"))
	if err != nil {
		logger.V(2).Info("NUMA node unknown", "gpu", index, "err", err)
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		logger.V(2).Info("NUMA node unknown: unexpected numa_node contents", "gpu", index, "contents", string(b))
		return nil
	}
	if n < 0 {
		return nil
	}
	v := int32(n)
	return &v
}
