package agent

import (
	"errors"
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// MIGManager creates and destroys MIG instances through NVML: on a GPU the
// agent publishes as MIG-dynamic, the scheduler chooses where each MIG pod's
// instance goes (profile and memory-slice start), and the agent's device
// plugin has it created before the container starts, then destroyed once no
// pod holds it. It must be the only one changing those GPUs' MIG layout
// (no MIG Manager of the GPU Operator on them): two writers would destroy
// each other's instances.
//
// Calls are serialised: NVML's MIG configuration is per GPU and not meant
// for concurrent changes, and a create that raced a destroy of the same
// slot would hand a container an instance about to vanish.
type MIGManager struct {
	// Lib is the initialised NVML.
	Lib    nvml.Interface
	Logger klog.Logger

	mu sync.Mutex
}

// ErrMIGOverlap is returned (wrapped) by Ensure when the slot overlaps an
// instance that exists: the scheduler's view of the GPU was not the GPU's.
var ErrMIGOverlap = errors.New("overlaps an existing MIG instance")

// Ensure returns the MIG device UUID of the instance of profile starting at
// memory slice start on GPU index, creating the GPU instance and its one
// compute instance (all of its compute slices) if there is none; created
// says whether it did.
func (m *MIGManager) Ensure(index int, profile string, start int) (uuid string, created bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dev, product, memory, err := m.open(index)
	if err != nil {
		return "", false, err
	}
	info, err := m.profileInfo(dev, product, memory, profile)
	if err != nil {
		return "", false, err
	}
	gis, ret := dev.handle.GetGpuInstances(&info)
	if ret != nvml.SUCCESS {
		return "", false, nvmlErr(index, "listing MIG GPU instances", ret)
	}
	for _, gi := range gis {
		gii, ret := gi.GetInfo()
		if ret == nvml.SUCCESS && int(gii.Placement.Start) == start {
			uuid, err := m.ensureComputeInstance(dev, gi, gii.Id, int(info.SliceCount))
			return uuid, false, err
		}
	}
	placements, ret := dev.handle.GetGpuInstancePossiblePlacements(&info)
	if ret != nvml.SUCCESS {
		return "", false, nvmlErr(index, "reading the placements of MIG "+profile, ret)
	}
	var placement *nvml.GpuInstancePlacement
	var legal []uint32
	for i := range placements {
		legal = append(legal, placements[i].Start)
		if int(placements[i].Start) == start {
			placement = &placements[i]
		}
	}
	if placement == nil {
		return "", false, fmt.Errorf("GPU %d: MIG %s cannot start at memory slice %d (legal starts %v)", index, profile, start, legal)
	}
	gi, ret := dev.handle.CreateGpuInstanceWithPlacement(&info, placement)
	switch {
	case ret == nvml.ERROR_INSUFFICIENT_RESOURCES:
		return "", false, fmt.Errorf("GPU %d: MIG %s at memory slice %d %w (NVML: %v)", index, profile, start, ErrMIGOverlap, ret)
	case ret != nvml.SUCCESS:
		return "", false, nvmlErr(index, fmt.Sprintf("creating MIG %s at memory slice %d", profile, start), ret)
	}
	gii, ret := gi.GetInfo()
	if ret != nvml.SUCCESS {
		_ = gi.Destroy()
		return "", false, nvmlErr(index, "reading the new MIG GPU instance", ret)
	}
	uuid, err = m.ensureComputeInstance(dev, gi, gii.Id, int(info.SliceCount))
	if err != nil {
		if ret := gi.Destroy(); ret != nvml.SUCCESS {
			m.Logger.Info("Could not remove a MIG GPU instance whose compute instance failed", "gpu", index, "start", start, "err", ret)
		}
		return "", false, err
	}
	m.Logger.Info("Created a MIG instance", "gpu", index, "profile", profile, "start", start, "uuid", uuid)
	return uuid, true, nil
}

// Instances lists the MIG instances of GPU index, as discovery publishes
// them.
func (m *MIGManager) Instances(index int) ([]tesserav1alpha1.MIGInstance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dev, product, memory, err := m.open(index)
	if err != nil {
		return nil, err
	}
	return migInstances(m.Logger, dev, product, memory)
}

// Destroy destroys the MIG instance starting at memory slice start on GPU
// index, its compute instances first. It is not an error if there is none.
func (m *MIGManager) Destroy(index int, start int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dev, _, _, err := m.open(index)
	if err != nil {
		return err
	}
	for p := 0; p < nvml.GPU_INSTANCE_PROFILE_COUNT; p++ {
		info, ret := dev.handle.GetGpuInstanceProfileInfo(p)
		if ret != nvml.SUCCESS {
			continue
		}
		gis, ret := dev.handle.GetGpuInstances(&info)
		if ret != nvml.SUCCESS {
			continue
		}
		for _, gi := range gis {
			gii, ret := gi.GetInfo()
			if ret != nvml.SUCCESS || int(gii.Placement.Start) != start {
				continue
			}
			for _, ci := range computeInstances(gi) {
				if ret := ci.Destroy(); ret != nvml.SUCCESS {
					return nvmlErr(index, fmt.Sprintf("destroying the compute instance of the MIG instance at %d", start), ret)
				}
			}
			if ret := gi.Destroy(); ret != nvml.SUCCESS {
				return nvmlErr(index, fmt.Sprintf("destroying the MIG instance at %d", start), ret)
			}
			m.Logger.Info("Destroyed a MIG instance no pod holds", "gpu", index, "start", start)
			return nil
		}
	}
	return nil
}

func (m *MIGManager) open(index int) (device, string, uint64, error) {
	h, ret := m.Lib.DeviceGetHandleByIndex(index)
	if ret != nvml.SUCCESS {
		return device{}, "", 0, nvmlErr(index, "opening device", ret)
	}
	dev := device{index: index, handle: h}
	mem, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return device{}, "", 0, nvmlErr(index, "reading memory size", ret)
	}
	name, ret := h.GetName()
	if ret != nvml.SUCCESS {
		return device{}, "", 0, nvmlErr(index, "reading product name", ret)
	}
	return dev, productName(name, int64(mem.Total>>20)), mem.Total, nil
}

// profileInfo finds the NVML GPU instance profile that discovery names
// profile on this GPU (base profiles only, not their media variants).
func (m *MIGManager) profileInfo(dev device, product string, memory uint64, profile string) (nvml.GpuInstanceProfileInfo, error) {
	var names []string
	for p := 0; p < nvml.GPU_INSTANCE_PROFILE_COUNT; p++ {
		if _, variant := profileAttribute[p]; variant {
			continue
		}
		info, ret := dev.handle.GetGpuInstanceProfileInfo(p)
		if ret != nvml.SUCCESS {
			continue
		}
		name := migProfileName(m.Logger, dev.index, product, p, info, 0, memory)
		if name == profile {
			return info, nil
		}
		names = append(names, name)
	}
	return nvml.GpuInstanceProfileInfo{}, fmt.Errorf("GPU %d (%s) has no MIG profile %q (it has %v)", dev.index, product, profile, names)
}

// ensureComputeInstance returns the MIG device UUID of GPU instance gi,
// creating its compute instance over all its slices if it has none.
func (m *MIGManager) ensureComputeInstance(dev device, gi nvml.GpuInstance, giID uint32, slices int) (string, error) {
	if len(computeInstances(gi)) == 0 {
		var created bool
		for p := 0; p < nvml.COMPUTE_INSTANCE_PROFILE_COUNT && !created; p++ {
			info, ret := gi.GetComputeInstanceProfileInfo(p, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
			if ret != nvml.SUCCESS || int(info.SliceCount) != slices {
				continue
			}
			if _, ret := gi.CreateComputeInstance(&info); ret != nvml.SUCCESS {
				return "", nvmlErr(dev.index, "creating a MIG compute instance", ret)
			}
			created = true
		}
		if !created {
			return "", fmt.Errorf("GPU %d: no compute instance profile of %d slices for MIG GPU instance %d", dev.index, slices, giID)
		}
	}
	n, ret := dev.handle.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		return "", nvmlErr(dev.index, "counting MIG devices", ret)
	}
	for i := 0; i < n; i++ {
		mig, ret := dev.handle.GetMigDeviceHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		if id, ret := mig.GetGpuInstanceId(); ret != nvml.SUCCESS || uint32(id) != giID {
			continue
		}
		uuid, ret := mig.GetUUID()
		if ret != nvml.SUCCESS {
			return "", nvmlErr(dev.index, "reading a MIG device UUID", ret)
		}
		return uuid, nil
	}
	return "", fmt.Errorf("GPU %d: NVML lists no MIG device for GPU instance %d", dev.index, giID)
}

// computeInstances lists every compute instance of gi once (two profile
// enumerators may name the same profile).
func computeInstances(gi nvml.GpuInstance) []nvml.ComputeInstance {
	var out []nvml.ComputeInstance
	seen := map[uint32]bool{}
	for p := 0; p < nvml.COMPUTE_INSTANCE_PROFILE_COUNT; p++ {
		info, ret := gi.GetComputeInstanceProfileInfo(p, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		if ret != nvml.SUCCESS {
			continue
		}
		cis, ret := gi.GetComputeInstances(&info)
		if ret != nvml.SUCCESS {
			continue
		}
		for _, ci := range cis {
			if cii, ret := ci.GetInfo(); ret == nvml.SUCCESS && !seen[cii.Id] {
				seen[cii.Id] = true
				out = append(out, ci)
			}
		}
	}
	return out
}
