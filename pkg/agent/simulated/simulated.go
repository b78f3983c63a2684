// Package simulated gives tessera-agent GPUs that are not there: one of
// NVIDIA's mocked DGX systems (go-nvml's pkg/nvml/mock), wired as the real
// machine is — every pair of its eight GPUs linked over NVLink (one
// NVSwitch fabric), GPUs 0-3 on NUMA node 0 and 4-7 on NUMA node 1, GPUs in
// pairs under one PCIe switch — with UUIDs derived from the node's name, so
// that they stay the same across restarts and differ between nodes.
//
// It lets playgrounds and end-to-end tests on machines without GPUs run the
// agent's whole path on real kubelets: discovery, publishing the
// NodeGPUTopology, and handing devices to containers. tessera-agent uses it
// only when started with --simulate, never by default.
//
// GPUs named to New have MIG enabled, with no instances, and their MIG
// calls behave as the driver's do rather than as the mock's (which accepts
// anything): a GPU instance must be created at one of its profile's legal
// placements, which are the driver's (the mock's own tables for H100, H200
// and B200 have 3g and 7g instances one memory slice short, and 1g
// double-memory instances at every slice), and must not overlap another; a
// GPU instance with a compute instance cannot be destroyed; and every
// compute instance is a MIG device, listed by GetMigDeviceHandleByIndex,
// with a UUID of its own that a re-created instance does not reuse. The
// instances live in memory only: a restarted process starts again with
// none.
package simulated

import (
	"crypto/sha1"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/google/uuid"

	"github.com/tessera-sched/tessera/pkg/agent/nvmltest"
)

// systems are the machines --simulate can stand in for.
var systems = map[string]func() *server.Server{
	"dgx-a100": dgxa100.New,
	"dgx-h100": dgxh100.New,
	"dgx-h200": dgxh200.New,
	"dgx-b200": dgxb200.New,
}

// Systems lists the names New accepts, sorted.
func Systems() []string {
	names := make([]string, 0, len(systems))
	for n := range systems {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New returns the simulated NVML of system (one of Systems) on the node
// named node. The GPUs whose indices are in migGPUs have MIG enabled and no
// MIG instances; the others have MIG disabled. An index that is not a GPU
// of the system, or is given twice, is an error.
func New(system, node string, migGPUs []int) (nvml.Interface, error) {
	newServer, ok := systems[system]
	if !ok {
		return nil, fmt.Errorf("unknown simulated system %q (known: %s)", system, strings.Join(Systems(), ", "))
	}
	s := nvmltest.Stub(newServer())
	devices := make([]*server.Device, len(s.Devices))
	for i, d := range s.Devices {
		devices[i] = d.(*server.Device)
	}
	mig := make([]bool, len(devices))
	for _, i := range migGPUs {
		switch {
		case i < 0 || i >= len(devices):
			return nil, fmt.Errorf("MIG GPU %d does not exist: the simulated %s has %d GPUs (0-%d)", i, system, len(devices), len(devices)-1)
		case mig[i]:
			return nil, fmt.Errorf("MIG GPU %d is given twice (the simulated %s has %d GPUs)", i, system, len(devices))
		}
		mig[i] = true
	}
	half := len(devices) / 2
	for i, dev := range devices {
		dev.UUID = "GPU-" + uuid.NewHash(sha1.New(), uuid.NameSpaceOID, []byte(fmt.Sprintf("tessera-simulated/%s/%s/%d", system, node, i)), 5).String()
		numa := 0
		if half > 0 && i >= half {
			numa = 1
		}
		dev.GetNumaNodeIdFunc = func() (int, nvml.Return) { return numa, nvml.SUCCESS }
		dev.GetP2PStatusFunc = func(nvml.Device, nvml.GpuP2PCapsIndex) (nvml.GpuP2PStatus, nvml.Return) {
			return nvml.P2P_STATUS_OK, nvml.SUCCESS
		}
		index := i
		dev.GetTopologyCommonAncestorFunc = func(peer nvml.Device) (nvml.GpuTopologyLevel, nvml.Return) {
			for j, other := range devices {
				if nvml.Device(other) == peer {
					if j/2 == index/2 {
						return nvml.TOPOLOGY_SINGLE, nvml.SUCCESS
					}
					if (j < half) == (index < half) {
						return nvml.TOPOLOGY_NODE, nvml.SUCCESS
					}
					return nvml.TOPOLOGY_SYSTEM, nvml.SUCCESS
				}
			}
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
	}
	gpus := make([]*migGPU, len(devices))
	for i, dev := range devices {
		gpus[i] = simulateMIG(dev, mig[i])
	}
	byUUID := s.DeviceGetHandleByUUIDFunc
	s.DeviceGetHandleByUUIDFunc = func(id string) (nvml.Device, nvml.Return) {
		if !strings.HasPrefix(id, "MIG-") {
			return byUUID(id)
		}
		for _, g := range gpus {
			if h, ok := g.migDeviceByUUID(id); ok {
				return h, nvml.SUCCESS
			}
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	return s, nil
}

// maxMIGDevices is what GetMaxMigDeviceCount answers on a MIG-enabled GPU:
// seven, one per compute slice, on every simulated system.
const maxMIGDevices = 7

// placements are the driver's GPU instance placements (start and size in
// memory slices) on the 7-compute, 8-memory-slice GPUs of the simulated
// systems, by NVML profile, as nvidia-smi mig -lgipp lists them and as the
// scheduler's catalog (pkg/gpu) models them. They replace the mock's, which
// for H100, H200 and B200 are not the driver's. A profile not here keeps the
// mock's placements.
var placements = map[uint32][]nvml.GpuInstancePlacement{
	nvml.GPU_INSTANCE_PROFILE_1_SLICE:      spaced(0, 1, 1, 7),
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1: spaced(0, 1, 1, 7),
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2: spaced(0, 2, 2, 4),
	nvml.GPU_INSTANCE_PROFILE_2_SLICE:      spaced(0, 2, 2, 3),
	nvml.GPU_INSTANCE_PROFILE_3_SLICE:      spaced(0, 4, 4, 2),
	nvml.GPU_INSTANCE_PROFILE_4_SLICE:      spaced(0, 4, 4, 1),
	nvml.GPU_INSTANCE_PROFILE_7_SLICE:      spaced(0, 8, 8, 1),
}

// spaced returns n placements of size, the first at start and each step
// after the one before.
func spaced(start, step, size, n uint32) []nvml.GpuInstancePlacement {
	out := make([]nvml.GpuInstancePlacement, n)
	for i := range out {
		out[i] = nvml.GpuInstancePlacement{Start: start + uint32(i)*step, Size: size}
	}
	return out
}

// migGPU is the MIG state of one simulated GPU that the mock does not keep:
// its MIG devices (compute instances) with their UUIDs. The GPU instances
// themselves stay in the mock's dev.GpuInstances, each one's compute
// instances in its ComputeInstances.
//
// All of it is guarded by dev's lock (the mock's server.Device RWMutex).
// Changes hold it for writing; a GPU instance's own lock, which the mock's
// GetComputeInstances takes, is only taken with dev's held, never the other
// way round.
type migGPU struct {
	dev *server.Device
	// serial counts the compute instances ever created on the GPU; it goes
	// into each MIG device's UUID, so that a re-created instance (same GPU
	// and compute instance IDs) gets a new UUID, as on real hardware.
	serial uint64
	migs   map[*server.ComputeInstance]*migDevice
}

// migDevice is one MIG device: a compute instance and its handle.
type migDevice struct {
	gi     *server.GpuInstance
	ci     *server.ComputeInstance
	uuid   string
	handle *mock.Device
	// gone is set when the compute instance is destroyed: the handle then
	// answers ERROR_INVALID_ARGUMENT, as a stale NVML handle does.
	gone bool
}

// simulateMIG replaces the mock's MIG calls on dev with ones that check
// what the driver checks, and enables MIG on it if mig.
func simulateMIG(dev *server.Device, mig bool) *migGPU {
	g := &migGPU{dev: dev, migs: map[*server.ComputeInstance]*migDevice{}}
	dev.MigMode = nvml.DEVICE_MIG_DISABLE
	if mig {
		dev.MigMode = nvml.DEVICE_MIG_ENABLE
	}
	dev.SetMigModeFunc = g.setMigMode
	dev.GetGpuInstancePossiblePlacementsFunc = g.possiblePlacements
	dev.CreateGpuInstanceFunc = func(info *nvml.GpuInstanceProfileInfo) (nvml.GpuInstance, nvml.Return) {
		return g.createGpuInstance(info, nil)
	}
	dev.CreateGpuInstanceWithPlacementFunc = func(info *nvml.GpuInstanceProfileInfo, placement *nvml.GpuInstancePlacement) (nvml.GpuInstance, nvml.Return) {
		if placement == nil {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		return g.createGpuInstance(info, placement)
	}
	dev.GetGpuInstancesFunc = g.gpuInstances
	dev.GetGpuInstanceByIdFunc = g.gpuInstanceByID
	dev.GetMaxMigDeviceCountFunc = g.maxMigDeviceCount
	dev.GetMigDeviceHandleByIndexFunc = g.migDeviceHandleByIndex
	dev.IsMigDeviceHandleFunc = func() (bool, nvml.Return) { return false, nvml.SUCCESS }
	dev.GetDeviceHandleFromMigDeviceHandleFunc = func() (nvml.Device, nvml.Return) {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	return g
}

// enabled says whether MIG is on; dev's lock must be held.
func (g *migGPU) enabled() bool { return g.dev.MigMode == nvml.DEVICE_MIG_ENABLE }

// setMigMode switches MIG on or off at once (there is no GPU reset to wait
// for), but not off while GPU instances exist.
func (g *migGPU) setMigMode(mode int) (nvml.Return, nvml.Return) {
	g.dev.Lock()
	defer g.dev.Unlock()
	switch {
	case mode != nvml.DEVICE_MIG_ENABLE && mode != nvml.DEVICE_MIG_DISABLE:
		return nvml.ERROR_INVALID_ARGUMENT, nvml.ERROR_INVALID_ARGUMENT
	case mode == nvml.DEVICE_MIG_DISABLE && len(g.dev.GpuInstances) > 0:
		return nvml.ERROR_IN_USE, nvml.ERROR_IN_USE
	}
	g.dev.MigMode = mode
	return nvml.SUCCESS, nvml.SUCCESS
}

// profile returns the GPU's own profile info for the profile info.Id names.
func (g *migGPU) profile(info *nvml.GpuInstanceProfileInfo) (nvml.GpuInstanceProfileInfo, bool) {
	if info == nil {
		return nvml.GpuInstanceProfileInfo{}, false
	}
	p, ok := g.dev.Config.MIGProfiles.GpuInstanceProfiles[int(info.Id)]
	return p, ok
}

// placementsOf returns the legal placements of GPU instance profile id.
func (g *migGPU) placementsOf(id uint32) []nvml.GpuInstancePlacement {
	if p, ok := placements[id]; ok {
		return p
	}
	return g.dev.Config.MIGProfiles.GpuInstancePlacements[int(id)]
}

func (g *migGPU) possiblePlacements(info *nvml.GpuInstanceProfileInfo) ([]nvml.GpuInstancePlacement, nvml.Return) {
	g.dev.RLock()
	defer g.dev.RUnlock()
	if info == nil {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	prof, ok := g.profile(info)
	if !g.enabled() || !ok {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	return append([]nvml.GpuInstancePlacement(nil), g.placementsOf(prof.Id)...), nvml.SUCCESS
}

// overlaps says whether [p.Start, p.Start+p.Size) shares a memory slice
// with an existing GPU instance; dev's lock must be held.
func (g *migGPU) overlaps(p nvml.GpuInstancePlacement) bool {
	for gi := range g.dev.GpuInstances {
		q := gi.Info.Placement
		if p.Start < q.Start+q.Size && q.Start < p.Start+p.Size {
			return true
		}
	}
	return false
}

// createGpuInstance creates a GPU instance of info's profile at placement,
// or at the first free legal placement if placement is nil:
// ERROR_NOT_SUPPORTED if MIG is off, ERROR_INVALID_ARGUMENT for a profile
// the GPU does not have or a placement that is not one of the profile's,
// ERROR_INSUFFICIENT_RESOURCES if the placement overlaps an instance (or no
// placement is free) or the profile's instance count is reached.
func (g *migGPU) createGpuInstance(info *nvml.GpuInstanceProfileInfo, placement *nvml.GpuInstancePlacement) (nvml.GpuInstance, nvml.Return) {
	d := g.dev
	d.Lock()
	defer d.Unlock()
	if !g.enabled() {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	prof, ok := g.profile(info)
	if !ok {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	legal := g.placementsOf(prof.Id)
	var at nvml.GpuInstancePlacement
	if placement != nil {
		found := false
		for _, p := range legal {
			found = found || p == *placement
		}
		if !found {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		if g.overlaps(*placement) {
			return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
		}
		at = *placement
	} else {
		found := false
		for _, p := range legal {
			if !g.overlaps(p) {
				at, found = p, true
				break
			}
		}
		if !found {
			return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
		}
	}
	same := 0
	for gi := range d.GpuInstances {
		if gi.Info.ProfileId == prof.Id {
			same++
		}
	}
	if prof.InstanceCount > 0 && same >= int(prof.InstanceCount) {
		return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
	}
	// GPU instance IDs: the lowest free one from 1, so that IDs are reused
	// as the driver reuses them.
	used := map[uint32]bool{}
	for gi := range d.GpuInstances {
		used[gi.Info.Id] = true
	}
	id := uint32(1)
	for used[id] {
		id++
	}
	gi := server.NewGpuInstanceFromInfo(nvml.GpuInstanceInfo{Device: d, Id: id, ProfileId: prof.Id, Placement: at}, d.Config.MIGProfiles)
	gi.DestroyFunc = func() nvml.Return { return g.destroyGpuInstance(gi) }
	gi.CreateComputeInstanceFunc = func(info *nvml.ComputeInstanceProfileInfo) (nvml.ComputeInstance, nvml.Return) {
		return g.createComputeInstance(gi, info, nil)
	}
	gi.CreateComputeInstanceWithPlacementFunc = func(info *nvml.ComputeInstanceProfileInfo, placement *nvml.ComputeInstancePlacement) (nvml.ComputeInstance, nvml.Return) {
		return g.createComputeInstance(gi, info, placement)
	}
	gi.GetComputeInstanceByIdFunc = func(id int) (nvml.ComputeInstance, nvml.Return) {
		gi.RLock()
		defer gi.RUnlock()
		for ci := range gi.ComputeInstances {
			if int(ci.Info.Id) == id {
				return ci, nvml.SUCCESS
			}
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	d.GpuInstances[gi] = struct{}{}
	return gi, nvml.SUCCESS
}

// gpuInstances lists the GPU instances of info's profile, by ID.
func (g *migGPU) gpuInstances(info *nvml.GpuInstanceProfileInfo) ([]nvml.GpuInstance, nvml.Return) {
	g.dev.RLock()
	defer g.dev.RUnlock()
	if !g.enabled() {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	prof, ok := g.profile(info)
	if !ok {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	var gis []*server.GpuInstance
	for gi := range g.dev.GpuInstances {
		if gi.Info.ProfileId == prof.Id {
			gis = append(gis, gi)
		}
	}
	sort.Slice(gis, func(i, j int) bool { return gis[i].Info.Id < gis[j].Info.Id })
	out := make([]nvml.GpuInstance, len(gis))
	for i, gi := range gis {
		out[i] = gi
	}
	return out, nvml.SUCCESS
}

func (g *migGPU) gpuInstanceByID(id int) (nvml.GpuInstance, nvml.Return) {
	g.dev.RLock()
	defer g.dev.RUnlock()
	if !g.enabled() {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	for gi := range g.dev.GpuInstances {
		if int(gi.Info.Id) == id {
			return gi, nvml.SUCCESS
		}
	}
	return nil, nvml.ERROR_NOT_FOUND
}

// destroyGpuInstance destroys gi: ERROR_IN_USE while it has a compute
// instance, ERROR_INVALID_ARGUMENT if it is already gone.
func (g *migGPU) destroyGpuInstance(gi *server.GpuInstance) nvml.Return {
	g.dev.Lock()
	defer g.dev.Unlock()
	if _, ok := g.dev.GpuInstances[gi]; !ok {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	gi.RLock()
	busy := len(gi.ComputeInstances) > 0
	gi.RUnlock()
	if busy {
		return nvml.ERROR_IN_USE
	}
	delete(g.dev.GpuInstances, gi)
	return nvml.SUCCESS
}

// createComputeInstance creates the compute instance of gi, and so a MIG
// device: ERROR_INVALID_ARGUMENT if gi is gone or info is not one of its
// compute instance profiles (or placement not one of the profile's),
// ERROR_INSUFFICIENT_RESOURCES if gi has one already (the simulation gives
// each GPU instance at most one).
func (g *migGPU) createComputeInstance(gi *server.GpuInstance, info *nvml.ComputeInstanceProfileInfo, placement *nvml.ComputeInstancePlacement) (nvml.ComputeInstance, nvml.Return) {
	d := g.dev
	d.Lock()
	defer d.Unlock()
	if _, ok := d.GpuInstances[gi]; !ok || info == nil {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	giProfile := int(gi.Info.ProfileId)
	prof, ok := gi.MIGProfiles.ComputeInstanceProfiles[giProfile][int(info.Id)]
	if !ok {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	legal := gi.MIGProfiles.ComputeInstancePlacements[giProfile][int(prof.Id)]
	var at nvml.ComputeInstancePlacement
	switch {
	case placement != nil:
		found := false
		for _, p := range legal {
			found = found || p == *placement
		}
		if !found {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		at = *placement
	case len(legal) > 0:
		at = legal[0]
	}
	gi.Lock()
	defer gi.Unlock()
	if len(gi.ComputeInstances) > 0 {
		return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
	}
	// The only compute instance of its GPU instance: ID 0, as the driver
	// gives the first.
	ci := server.NewComputeInstanceFromInfo(nvml.ComputeInstanceInfo{Device: d, GpuInstance: gi, Id: 0, ProfileId: prof.Id, Placement: at})
	ci.DestroyFunc = func() nvml.Return { return g.destroyComputeInstance(gi, ci) }
	gi.ComputeInstances[ci] = struct{}{}
	g.serial++
	g.migs[ci] = g.newMIGDevice(gi, ci, prof)
	return ci, nvml.SUCCESS
}

// destroyComputeInstance destroys ci, and so its MIG device.
func (g *migGPU) destroyComputeInstance(gi *server.GpuInstance, ci *server.ComputeInstance) nvml.Return {
	g.dev.Lock()
	defer g.dev.Unlock()
	gi.Lock()
	defer gi.Unlock()
	if _, ok := gi.ComputeInstances[ci]; !ok {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	delete(gi.ComputeInstances, ci)
	if m := g.migs[ci]; m != nil {
		m.gone = true
		delete(g.migs, ci)
	}
	return nvml.SUCCESS
}

// newMIGDevice makes the MIG device of compute instance ci (of profile
// prof) in gi; dev's lock must be held for writing, g.serial already
// counting ci.
func (g *migGPU) newMIGDevice(gi *server.GpuInstance, ci *server.ComputeInstance, prof nvml.ComputeInstanceProfileInfo) *migDevice {
	d := g.dev
	m := &migDevice{
		gi:     gi,
		ci:     ci,
		uuid:   "MIG-" + uuid.NewHash(sha1.New(), uuid.NameSpaceOID, []byte(fmt.Sprintf("tessera-simulated-mig/%s/%d/%d/%d", d.UUID, gi.Info.Id, ci.Info.Id, g.serial)), 5).String(),
		handle: &mock.Device{},
	}
	giProf := d.Config.MIGProfiles.GpuInstanceProfiles[int(gi.Info.ProfileId)]
	name := fmt.Sprintf("%dg.%dgb", giProf.SliceCount, migMemoryGB(d.MemoryInfo.Total, giProf.MemorySizeMB))
	if prof.SliceCount != giProf.SliceCount {
		name = fmt.Sprintf("%dc.%s", prof.SliceCount, name)
	}
	name = d.Config.Name + " MIG " + name
	valid := func() nvml.Return {
		d.RLock()
		defer d.RUnlock()
		if m.gone {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		return nvml.SUCCESS
	}
	h := m.handle
	h.GetUUIDFunc = func() (string, nvml.Return) {
		if ret := valid(); ret != nvml.SUCCESS {
			return "", ret
		}
		return m.uuid, nvml.SUCCESS
	}
	h.GetNameFunc = func() (string, nvml.Return) {
		if ret := valid(); ret != nvml.SUCCESS {
			return "", ret
		}
		return name, nvml.SUCCESS
	}
	h.GetGpuInstanceIdFunc = func() (int, nvml.Return) {
		if ret := valid(); ret != nvml.SUCCESS {
			return 0, ret
		}
		return int(gi.Info.Id), nvml.SUCCESS
	}
	h.GetComputeInstanceIdFunc = func() (int, nvml.Return) {
		if ret := valid(); ret != nvml.SUCCESS {
			return 0, ret
		}
		return int(ci.Info.Id), nvml.SUCCESS
	}
	h.IsMigDeviceHandleFunc = func() (bool, nvml.Return) { return true, nvml.SUCCESS }
	h.GetDeviceHandleFromMigDeviceHandleFunc = func() (nvml.Device, nvml.Return) {
		if ret := valid(); ret != nvml.SUCCESS {
			return nil, ret
		}
		return d, nvml.SUCCESS
	}
	h.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		if ret := valid(); ret != nvml.SUCCESS {
			return nvml.Memory{}, ret
		}
		total := giProf.MemorySizeMB << 20
		return nvml.Memory{Total: total, Free: total}, nvml.SUCCESS
	}
	h.GetAttributesFunc = func() (nvml.DeviceAttributes, nvml.Return) {
		if ret := valid(); ret != nvml.SUCCESS {
			return nvml.DeviceAttributes{}, ret
		}
		return nvml.DeviceAttributes{
			MultiprocessorCount:       prof.MultiprocessorCount,
			SharedCopyEngineCount:     giProf.CopyEngineCount,
			SharedDecoderCount:        giProf.DecoderCount,
			SharedEncoderCount:        giProf.EncoderCount,
			SharedJpegCount:           giProf.JpegCount,
			SharedOfaCount:            giProf.OfaCount,
			GpuInstanceSliceCount:     giProf.SliceCount,
			ComputeInstanceSliceCount: prof.SliceCount,
			MemorySizeMB:              giProf.MemorySizeMB,
		}, nvml.SUCCESS
	}
	return m
}

// migMemoryGB is the memory size in a MIG profile's name, computed as
// NVIDIA's tools (and the agent's discovery) do: the profile's share of the
// GPU's memory rounded up to eighths, times the GPU's memory in whole GiB.
func migMemoryGB(totalBytes, profileMiB uint64) uint64 {
	if totalBytes == 0 {
		return (profileMiB + 1023) / 1024
	}
	share := math.Ceil(float64(profileMiB)*(1<<20)/float64(totalBytes)*8) / 8
	return uint64(math.Round(share * float64((totalBytes+(1<<30)-1)>>30)))
}

func (g *migGPU) maxMigDeviceCount() (int, nvml.Return) {
	g.dev.RLock()
	defer g.dev.RUnlock()
	if !g.enabled() {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	return maxMIGDevices, nvml.SUCCESS
}

// migDeviceHandleByIndex returns the i-th MIG device, by GPU instance ID
// and then compute instance ID: ERROR_NOT_SUPPORTED if MIG is off,
// ERROR_INVALID_ARGUMENT for i outside [0, GetMaxMigDeviceCount), and
// ERROR_NOT_FOUND for an i inside it past the MIG devices there are.
func (g *migGPU) migDeviceHandleByIndex(i int) (nvml.Device, nvml.Return) {
	g.dev.RLock()
	defer g.dev.RUnlock()
	switch {
	case !g.enabled():
		return nil, nvml.ERROR_NOT_SUPPORTED
	case i < 0 || i >= maxMIGDevices:
		return nil, nvml.ERROR_INVALID_ARGUMENT
	case i >= len(g.migs):
		return nil, nvml.ERROR_NOT_FOUND
	}
	migs := make([]*migDevice, 0, len(g.migs))
	for _, m := range g.migs {
		migs = append(migs, m)
	}
	sort.Slice(migs, func(a, b int) bool {
		if migs[a].gi.Info.Id != migs[b].gi.Info.Id {
			return migs[a].gi.Info.Id < migs[b].gi.Info.Id
		}
		return migs[a].ci.Info.Id < migs[b].ci.Info.Id
	})
	return migs[i].handle, nvml.SUCCESS
}

// migDeviceByUUID finds the MIG device of this GPU with UUID id.
func (g *migGPU) migDeviceByUUID(id string) (nvml.Device, bool) {
	g.dev.RLock()
	defer g.dev.RUnlock()
	for _, m := range g.migs {
		if m.uuid == id {
			return m.handle, true
		}
	}
	return nil, false
}
