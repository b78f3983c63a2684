package agent

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// Options tune Discover.
type Options struct {
	// MIGLayout decides the MIG mode published for MIG-enabled GPUs:
	// MIGLayoutStatic (the default, also for "") or MIGLayoutDynamic.
	MIGLayout MIGLayout
	// HostFS is the host's file system root, read for
	// sys/bus/pci/devices/<bus id>/numa_node when NVML cannot tell a GPU's
	// NUMA node. It is a parameter so that tests can fake sysfs; nil means
	// os.DirFS("/").
	HostFS fs.FS
	// Logger receives what discovery could not find out. The zero value
	// discards it.
	Logger klog.Logger
}

// device is one GPU during discovery: its NVML handle and NVML index.
type device struct {
	index  int
	handle nvml.Device
}

// Info is what Discover learns about the node's NVIDIA software rather than
// its GPUs, for the published object's status and for people.
type Info struct {
	// DriverVersion is the kernel driver version, e.g. "550.54.15".
	DriverVersion string
	// NVMLVersion is the NVML library version, e.g. "12.550.54.15".
	NVMLVersion string
	// CUDADriverVersion is the CUDA version the driver supports, as NVML
	// encodes it (1000*major + 10*minor, e.g. 12040); 0 if unknown.
	CUDADriverVersion int
}

// Discover reads the node's GPUs from NVML into a NodeGPUTopology spec.
// lib must be initialised (lib.Init) by the caller, which keeps NVML loaded
// across the agent's periodic re-discoveries.
//
// For every GPU it reads the index, UUID, product (see productName), memory,
// PCI bus ID, NUMA node, NVLink domain, PCIe switch and MIG mode and
// instances. Questions NVML cannot answer on this GPU or driver
// (ERROR_NOT_SUPPORTED) leave the field out. Other failures of the hints
// (NUMA, links, MIG UUIDs) are logged and leave the field out too; failures
// of what the scheduler relies on for correctness (the GPU list, identity,
// MIG mode and instances) fail discovery, so that no wrong topology is
// published. GPUs are returned in NVML index order.
func Discover(lib nvml.Interface, opts Options) (tesserav1alpha1.NodeGPUTopologySpec, Info, error) {
	logger := opts.Logger
	host := opts.HostFS
	if host == nil {
		host = os.DirFS("/")
	}
	info := systemInfo(logger, lib)

	count, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return tesserav1alpha1.NodeGPUTopologySpec{}, info, fmt.Errorf("counting GPUs: %w", ret)
	}
	spec := tesserav1alpha1.NodeGPUTopologySpec{GPUs: make([]tesserav1alpha1.GPUDevice, 0, count)}
	devs := make([]device, 0, count)
	for i := 0; i < count; i++ {
		h, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return tesserav1alpha1.NodeGPUTopologySpec{}, info, nvmlErr(i, "opening device", ret)
		}
		d, err := describe(logger, lib, device{index: i, handle: h}, host, opts.MIGLayout)
		if err != nil {
			return tesserav1alpha1.NodeGPUTopologySpec{}, info, err
		}
		devs = append(devs, device{index: int(d.Index), handle: h})
		spec.GPUs = append(spec.GPUs, d)
	}

	domains := nvlinkDomains(logger, lib, devs)
	switches := pcieSwitches(logger, devs)
	for i := range spec.GPUs {
		spec.GPUs[i].NVLinkDomain = domains[i]
		spec.GPUs[i].PCIeSwitch = switches[i]
	}
	return spec, info, nil
}

// systemInfo reads the driver and library versions; they only decorate the
// status, so failures leave them empty.
func systemInfo(logger klog.Logger, lib nvml.Interface) Info {
	var info Info
	var ret nvml.Return
	if info.DriverVersion, ret = lib.SystemGetDriverVersion(); ret != nvml.SUCCESS {
		logger.V(2).Info("NVML could not tell the driver version", "err", ret)
		info.DriverVersion = ""
	}
	if info.NVMLVersion, ret = lib.SystemGetNVMLVersion(); ret != nvml.SUCCESS {
		info.NVMLVersion = ""
	}
	if info.CUDADriverVersion, ret = lib.SystemGetCudaDriverVersion(); ret != nvml.SUCCESS {
		info.CUDADriverVersion = 0
	}
	return info
}

// describe reads everything about one GPU that does not depend on the
// other GPUs. d.index is the enumeration position, used until NVML's own
// index is known.
func describe(logger klog.Logger, lib nvml.Interface, d device, host fs.FS, layout MIGLayout) (tesserav1alpha1.GPUDevice, error) {
	var out tesserav1alpha1.GPUDevice

	index, ret := d.handle.GetIndex()
	switch {
	case ret == nvml.SUCCESS:
		d.index = index
	case unsupported(ret):
	default:
		return out, nvmlErr(d.index, "reading index", ret)
	}
	out.Index = int32(d.index)

	uuid, ret := d.handle.GetUUID()
	switch {
	case ret == nvml.SUCCESS:
		out.UUID = uuid
	case unsupported(ret):
	default:
		return out, nvmlErr(d.index, "reading UUID", ret)
	}

	var memoryBytes uint64
	mem, ret := d.handle.GetMemoryInfo()
	switch {
	case ret == nvml.SUCCESS:
		memoryBytes = mem.Total
		out.MemoryMiB = int64(mem.Total >> 20)
	case unsupported(ret):
	default:
		logger.Info("NVML could not read the GPU's memory size", "gpu", d.index, "err", ret)
	}

	name, ret := d.handle.GetName()
	switch {
	case ret == nvml.SUCCESS:
		out.Product = productName(name, out.MemoryMiB)
	case unsupported(ret):
	default:
		return out, nvmlErr(d.index, "reading product name", ret)
	}

	pci, ret := d.handle.GetPciInfo()
	switch {
	case ret == nvml.SUCCESS:
		out.PCIBusID = normalizeBusID(cString(pci.BusId[:]))
	case unsupported(ret):
	default:
		logger.Info("NVML could not read the GPU's PCI address", "gpu", d.index, "err", ret)
	}

	out.NUMANode = numaNode(logger, lib, d.handle, d.index, out.PCIBusID, host)

	mig, err := migConfig(logger, d, out.Product, memoryBytes, layout)
	if err != nil {
		return out, err
	}
	out.MIG = mig
	return out, nil
}
