package agent

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/gpu"
)

// MIGLayout says who decides the MIG instances of the node's MIG GPUs, and
// so which MIG mode the agent publishes for them.
type MIGLayout string

const (
	// MIGLayoutStatic publishes MIG GPUs as Static: the scheduler hands out
	// only the instances that exist. This is the default: the layout stays
	// whoever made it (an admin, the GPU Operator's MIG Manager).
	MIGLayoutStatic MIGLayout = "static"
	// MIGLayoutDynamic publishes MIG GPUs as Dynamic: the scheduler may pick
	// a free legal slot for a new instance. The agent's device plugin
	// creates the instance there when the kubelet admits the pod and
	// destroys instances no pod holds (MIGManager); without the device
	// plugin, an external MIG manager must create what the scheduler chose.
	MIGLayoutDynamic MIGLayout = "dynamic"
)

// ParseMIGLayout parses the --mig-layout flag value, so that a typo fails at
// start-up instead of silently publishing the default.
func ParseMIGLayout(s string) (MIGLayout, error) {
	switch l := MIGLayout(s); l {
	case MIGLayoutStatic, MIGLayoutDynamic:
		return l, nil
	case "":
		return MIGLayoutStatic, nil
	}
	return "", fmt.Errorf("invalid MIG layout %q (want %q or %q)", s, MIGLayoutStatic, MIGLayoutDynamic)
}

// profileAttribute is the suffix that NVML's media-extension and graphics
// variants of a GPU instance profile add to the profile name ("1g.10gb+me").
// The variants have their base profile's compute and memory slices.
var profileAttribute = map[int]string{
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1:   "+me",
	nvml.GPU_INSTANCE_PROFILE_2_SLICE_REV1:   "+me",
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_GFX:    "+gfx",
	nvml.GPU_INSTANCE_PROFILE_2_SLICE_GFX:    "+gfx",
	nvml.GPU_INSTANCE_PROFILE_4_SLICE_GFX:    "+gfx",
	nvml.GPU_INSTANCE_PROFILE_3_SLICE_GFX:    "+gfx",
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_NO_ME:  "-me",
	nvml.GPU_INSTANCE_PROFILE_2_SLICE_NO_ME:  "-me",
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_ALL_ME: "+me.all",
	nvml.GPU_INSTANCE_PROFILE_2_SLICE_ALL_ME: "+me.all",
}

// migConfig reads a GPU's MIG mode and, if MIG is on, its GPU instances.
//
// A GPU without MIG support gets nil. Errors are returned rather than
// guessed around: publishing "MIG disabled" for a partitioned GPU, or a MIG
// GPU without its instances, would let the scheduler hand out capacity that
// is not there.
func migConfig(logger klog.Logger, dev device, product string, memoryBytes uint64, layout MIGLayout) (*tesserav1alpha1.MIGConfig, error) {
	current, pending, ret := dev.handle.GetMigMode()
	switch {
	case unsupported(ret):
		return nil, nil
	case ret != nvml.SUCCESS:
		return nil, nvmlErr(dev.index, "reading MIG mode", ret)
	}
	if pending != current {
		logger.V(1).Info("MIG mode change is pending until the GPU is reset; publishing the current mode", "gpu", dev.index, "current", current, "pending", pending)
	}
	if current != nvml.DEVICE_MIG_ENABLE {
		return &tesserav1alpha1.MIGConfig{Mode: tesserav1alpha1.MIGDisabled}, nil
	}
	cfg := &tesserav1alpha1.MIGConfig{Mode: tesserav1alpha1.MIGStatic}
	if layout == MIGLayoutDynamic {
		cfg.Mode = tesserav1alpha1.MIGDynamic
	}
	instances, err := migInstances(logger, dev, product, memoryBytes)
	if err != nil {
		return nil, err
	}
	cfg.Instances = instances
	return cfg, nil
}

// migInstances lists the GPU instances of a MIG-enabled GPU with their
// profile names and placement starts, by asking every GPU instance profile
// the GPU supports for its instances. MIG device UUIDs are added where each
// instance has exactly one compute instance (one MIG device).
func migInstances(logger klog.Logger, dev device, product string, memoryBytes uint64) ([]tesserav1alpha1.MIGInstance, error) {
	var out []tesserav1alpha1.MIGInstance
	ids := map[uint32]int{} // GPU instance ID -> position in out
	for p := 0; p < nvml.GPU_INSTANCE_PROFILE_COUNT; p++ {
		info, ret := dev.handle.GetGpuInstanceProfileInfo(p)
		switch {
		case ret == nvml.ERROR_INVALID_ARGUMENT, unsupported(ret):
			continue // a profile this GPU does not have
		case ret != nvml.SUCCESS:
			return nil, nvmlErr(dev.index, "reading GPU instance profile "+strconv.Itoa(p), ret)
		}
		gis, ret := dev.handle.GetGpuInstances(&info)
		switch {
		case unsupported(ret):
			continue
		case ret == nvml.ERROR_NO_PERMISSION:
			return nil, fmt.Errorf("%w: listing MIG instances needs NVML's MIG monitor capability (mig/monitor in /dev/nvidia-caps; in a pod, typically privileged with NVIDIA_MIG_MONITOR_DEVICES=all)", nvmlErr(dev.index, "listing MIG GPU instances", ret))
		case ret != nvml.SUCCESS:
			return nil, nvmlErr(dev.index, "listing MIG GPU instances", ret)
		}
		for _, gi := range gis {
			gii, ret := gi.GetInfo()
			if ret != nvml.SUCCESS {
				return nil, nvmlErr(dev.index, "reading a MIG GPU instance", ret)
			}
			if _, dup := ids[gii.Id]; dup {
				continue // two profile enumerators that name the same profile
			}
			name := migProfileName(logger, dev.index, product, p, info, gii.Placement.Size, memoryBytes)
			ids[gii.Id] = len(out)
			out = append(out, tesserav1alpha1.MIGInstance{Profile: name, Start: int32(gii.Placement.Start)})
		}
	}
	migUUIDs(logger, dev, ids, out)
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out, nil
}

// migProfileName names an instance of GPU instance profile enumerator p
// (with its profile info and placement size) the way nvidia-smi and the
// device plugin do, "<g>g.<memory>gb", and then spells it as the product's
// catalog does.
//
// The computed name is only trusted if the catalog's profile of that name
// has the instance's shape: as many compute slices, and as many memory
// slices as the placement is wide. Otherwise the catalog profile of that
// shape is used. The shape is what the scheduler's slot accounting needs,
// and it survives drivers or profiles whose memory sizes round differently
// from the catalog's names.
//
// Media-extension and graphics variants ("+me", "-me", "+gfx") are
// published under their base profile, because the catalog does not model
// them and they occupy the same slots; the scheduler's slot accounting stays
// right, and the device plugin still advertises them under their own
// resource name, which the scheduler's resource fit checks.
func migProfileName(logger klog.Logger, index int, product string, p int, info nvml.GpuInstanceProfileInfo, size uint32, memoryBytes uint64) string {
	name := strconv.Itoa(int(info.SliceCount)) + "g." + strconv.FormatUint(migMemoryGB(memoryBytes, info.MemorySizeMB), 10) + "gb"
	if attr, ok := profileAttribute[p]; ok {
		logger.V(2).Info("Publishing a MIG profile variant under its base profile", "gpu", index, "variant", name+attr, "profile", name)
	}
	prod, ok := gpu.LookupProduct(product)
	if !ok {
		return name
	}
	fits := func(mp gpu.MIGProfile) bool {
		return mp.ComputeSlices == int(info.SliceCount) && (size == 0 || mp.MemorySlices == int(size))
	}
	if mp, ok := prod.Profile(name); ok && fits(mp) {
		return mp.Name
	}
	for _, mp := range prod.MIGProfiles {
		if fits(mp) {
			logger.V(2).Info("MIG profile name does not match the catalog's profile of this shape; using the catalog's", "gpu", index, "nvml", name, "catalog", mp.Name, "placementSize", size)
			return mp.Name
		}
	}
	return name
}

// migMemoryGB computes the memory size in a MIG profile's name from the
// profile's memory and the GPU's total memory, as NVIDIA's tools do: the
// profile's share of the GPU's memory, rounded up to eighths (memory
// slices), times the GPU's memory in whole GiB (rounded up). Taking the
// share rather than the profile's own MiB is what makes a 1g instance of an
// 80 GB H100 "1g.10gb" although it has less than 10 GiB.
func migMemoryGB(totalBytes, profileMiB uint64) uint64 {
	const (
		mib     = 1 << 20
		gib     = 1 << 30
		eighths = 8
	)
	if totalBytes == 0 {
		return (profileMiB + 1023) / 1024
	}
	share := float64(profileMiB) * mib / float64(totalBytes)
	share = math.Ceil(share*eighths) / eighths
	totalGiB := float64((totalBytes + gib - 1) / gib)
	return uint64(math.Round(share * totalGiB))
}

// migUUIDs fills in the MIG device UUID of the instances in out (indexed by
// GPU instance ID through ids) that have exactly one MIG device. It only
// decorates: a failure is logged and leaves UUIDs out.
func migUUIDs(logger klog.Logger, dev device, ids map[uint32]int, out []tesserav1alpha1.MIGInstance) {
	n, ret := dev.handle.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		if !unsupported(ret) {
			logger.V(2).Info("NVML could not count MIG devices; leaving MIG UUIDs out", "gpu", dev.index, "err", ret)
		}
		return
	}
	uuids := map[int][]string{}
	for i := 0; i < n; i++ {
		mig, ret := dev.handle.GetMigDeviceHandleByIndex(i)
		if ret != nvml.SUCCESS {
			if ret != nvml.ERROR_NOT_FOUND && ret != nvml.ERROR_INVALID_ARGUMENT && !unsupported(ret) {
				logger.V(2).Info("NVML could not open a MIG device", "gpu", dev.index, "mig", i, "err", ret)
			}
			continue
		}
		gi, ret := mig.GetGpuInstanceId()
		if ret != nvml.SUCCESS {
			continue
		}
		uuid, ret := mig.GetUUID()
		if ret != nvml.SUCCESS {
			continue
		}
		if pos, ok := ids[uint32(gi)]; ok {
			uuids[pos] = append(uuids[pos], uuid)
		}
	}
	for pos, u := range uuids {
		if len(u) == 1 {
			out[pos].UUID = u[0]
		}
	}
}
