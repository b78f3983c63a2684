package deviceplugin

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/gpu"
)

// MIGGPU is a MIG-enabled GPU whose instances the agent serves.
type MIGGPU struct {
	Index   int
	UUID    string
	Product string
	// Dynamic says the agent creates the instances the scheduler places
	// (the GPU is published MIG-dynamic); otherwise only Instances are
	// served.
	Dynamic bool
	// Instances are the GPU's instances when the plugins start.
	Instances []tesserav1alpha1.MIGInstance
}

// MIGLayout creates, lists and destroys MIG instances (agent.MIGManager).
type MIGLayout interface {
	Ensure(index int, profile string, start int) (uuid string, created bool, err error)
	Instances(index int) ([]tesserav1alpha1.MIGInstance, error)
	Destroy(index int, start int) error
}

// placementID is the device ID of the slot where an instance of profile
// starts at memory slice start on a MIG-dynamic GPU (or of a static
// instance whose MIG UUID is unknown), modelled on the canonical device
// names of NVIDIA's DRA driver: the slot exists before its instance does.
func placementID(gpuUUID, profile string, start int) string {
	return gpuUUID + "-mig-" + profile + "-" + strconv.Itoa(start)
}

// parsePlacementID undoes placementID.
func parsePlacementID(id string) (gpuUUID, profile string, start int, ok bool) {
	i := strings.LastIndex(id, "-mig-")
	if i <= 0 {
		return "", "", 0, false
	}
	rest := id[i+len("-mig-"):]
	j := strings.LastIndex(rest, "-")
	if j <= 0 {
		return "", "", 0, false
	}
	start, err := strconv.Atoi(rest[j+1:])
	if err != nil {
		return "", "", 0, false
	}
	return id[:i], rest[:j], start, true
}

type migKey struct {
	gpu     int
	profile string
	start   int
}

// MIGPlugins returns one device plugin per MIG profile the GPUs offer,
// serving nvidia.com/mig-<profile> as NVIDIA's device plugin does with its
// mixed strategy, with Resource, IDs, Assigned and Prepare set (the caller
// sets the rest). On a static GPU a device is an existing instance (its MIG
// UUID as ID, as NVIDIA's plugin names it); on a dynamic GPU every legal
// slot of every profile of the product is a device (placementID), so that
// the kubelet admits a pod for a slot whose instance the agent creates in
// Allocate through layout. The kubelet's count of them is only an upper
// bound (overlapping slots are separate devices); GPUPlacement decides
// which fit, and Allocate refuses a slot that overlaps an instance. A
// container sees its instances' MIG UUIDs in NVIDIA_VISIBLE_DEVICES.
// created, if set, is poked (without blocking) after an instance is
// created, for the agent to publish the node's new layout.
func MIGPlugins(gpus []MIGGPU, layout MIGLayout, created chan<- struct{}) []*Plugin {
	ids := map[string][]string{} // profile -> device IDs
	table := map[migKey]string{}
	byIndex := map[int]MIGGPU{}
	byUUID := map[string]MIGGPU{}
	for _, g := range gpus {
		byIndex[g.Index] = g
		byUUID[g.UUID] = g
		if g.Dynamic {
			prod, _ := gpu.LookupProduct(g.Product)
			for _, p := range prod.MIGProfiles {
				for _, start := range p.Starts {
					id := placementID(g.UUID, p.Name, start)
					ids[p.Name] = append(ids[p.Name], id)
					table[migKey{g.Index, p.Name, start}] = id
				}
			}
			continue
		}
		for _, inst := range g.Instances {
			id := inst.UUID
			if id == "" {
				id = placementID(g.UUID, inst.Profile, int(inst.Start))
			}
			ids[inst.Profile] = append(ids[inst.Profile], id)
			table[migKey{g.Index, inst.Profile, int(inst.Start)}] = id
		}
	}
	profiles := make([]string, 0, len(ids))
	for p := range ids {
		profiles = append(profiles, p)
	}
	sort.Strings(profiles)
	var out []*Plugin
	for _, profile := range profiles {
		out = append(out, &Plugin{
			Resource: gpu.MIGResourcePrefix + profile,
			IDs:      ids[profile],
			Assigned: migAssigned(profile, byIndex, table),
			Prepare:  migPrepare(byUUID, layout, created),
		})
	}
	return out
}

// migAssigned maps an assignment's MIG slots of profile to device IDs, or
// says why this node cannot honour them.
func migAssigned(profile string, byIndex map[int]MIGGPU, table map[migKey]string) assignedFunc {
	return func(a gpu.Assignment) ([]string, error) {
		devs := a.Devices()
		var out []string
		for _, m := range a.MIG {
			if m.Profile != profile {
				continue
			}
			g, ok := byIndex[m.GPU]
			if !ok {
				return nil, fmt.Errorf("assignment names MIG %s on GPU %d, which is not a MIG-enabled GPU of this node", m.Profile, m.GPU)
			}
			if len(a.UUIDs) == len(devs) {
				if u := a.UUIDs[slices.Index(devs, m.GPU)]; u != g.UUID {
					return nil, fmt.Errorf("assignment names GPU %d as %s, but this node's GPU %d is %s", m.GPU, u, m.GPU, g.UUID)
				}
			}
			id, ok := table[migKey{m.GPU, m.Profile, m.Start}]
			if !ok {
				if g.Dynamic {
					prod, _ := gpu.LookupProduct(g.Product)
					p, _ := prod.Profile(m.Profile)
					return nil, fmt.Errorf("assignment names MIG %s at memory slice %d on GPU %d, not a legal slot of %s (legal starts %v)", m.Profile, m.Start, m.GPU, g.Product, p.Starts)
				}
				return nil, fmt.Errorf("assignment names MIG %s at memory slice %d on GPU %d, which has no such instance (MIG-static: the agent creates none)", m.Profile, m.Start, m.GPU)
			}
			out = append(out, id)
		}
		return out, nil
	}
}

// migPrepare creates the instances of the slots the kubelet allocated on
// dynamic GPUs and returns the MIG UUIDs the container sees.
func migPrepare(byUUID map[string]MIGGPU, layout MIGLayout, created chan<- struct{}) func([]string) ([]string, error) {
	return func(ids []string) ([]string, error) {
		var out []string
		for _, id := range ids {
			gpuUUID, profile, start, ok := parsePlacementID(id)
			if !ok {
				out = append(out, id) // an existing instance's MIG UUID
				continue
			}
			g, ok := byUUID[gpuUUID]
			if !ok || !g.Dynamic || layout == nil {
				return nil, fmt.Errorf("MIG %s at memory slice %d of GPU %s: no MIG device UUID is known and the agent does not create instances on this GPU", profile, start, gpuUUID)
			}
			uuid, made, err := layout.Ensure(g.Index, profile, start)
			if made || err != nil {
				migOperations.WithLabelValues("create", result(err)).Inc()
			}
			if err != nil {
				return nil, err
			}
			if made {
				poke(created)
			}
			out = append(out, uuid)
		}
		return out, nil
	}
}

// MIGCleaner destroys the instances of the node's MIG-dynamic GPUs that no
// pod holds any more, so that their slices are free for the next layout the
// scheduler chooses. An instance is held while any pod bound to the node
// that has not finished (pending ones included: the kubelet may be about
// to admit it) was assigned it or realized on it; an instance must be
// unheld for Grace before it goes, which covers pods the agent's informer
// has not seen yet. It never destroys an instance a pod holds.
type MIGCleaner struct {
	GPUs   []MIGGPU
	Layout MIGLayout
	// Pods lists the pods bound to this node.
	Pods func() []*v1.Pod
	// Grace defaults to 10s, Interval to 5s.
	Grace    time.Duration
	Interval time.Duration
	// Destroyed, if set, is poked (without blocking) after a destroy.
	Destroyed chan<- struct{}
	Logger    klog.Logger

	mu     sync.Mutex
	unheld map[migKey]time.Time
}

// Run cleans every Interval until stop closes.
func (c *MIGCleaner) Run(stop <-chan struct{}) {
	interval := c.Interval
	if interval == 0 {
		interval = 5 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		c.Sync(time.Now())
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// Sync destroys, once, the instances unheld for Grace as of now.
func (c *MIGCleaner) Sync(now time.Time) {
	grace := c.Grace
	if grace == 0 {
		grace = 10 * time.Second
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unheld == nil {
		c.unheld = map[migKey]time.Time{}
	}
	held := map[int]map[int]bool{} // GPU -> starts held
	for _, p := range c.Pods() {
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		for _, key := range []string{gpu.AnnotationRealized, gpu.AnnotationAssignment} {
			a, err := gpu.UnmarshalAssignment(p.Annotations[key])
			if err != nil {
				continue
			}
			for _, m := range a.MIG {
				if held[m.GPU] == nil {
					held[m.GPU] = map[int]bool{}
				}
				held[m.GPU][m.Start] = true
			}
		}
	}
	seen := map[migKey]bool{}
	for _, g := range c.GPUs {
		if !g.Dynamic {
			continue
		}
		insts, err := c.Layout.Instances(g.Index)
		if err != nil {
			c.Logger.Info("Could not list MIG instances", "gpu", g.Index, "err", err)
			continue
		}
		for _, inst := range insts {
			k := migKey{g.Index, inst.Profile, int(inst.Start)}
			seen[k] = true
			if held[g.Index][int(inst.Start)] {
				delete(c.unheld, k)
				continue
			}
			since, ok := c.unheld[k]
			if !ok {
				c.unheld[k] = now
				continue
			}
			if now.Sub(since) < grace {
				continue
			}
			err := c.Layout.Destroy(g.Index, int(inst.Start))
			migOperations.WithLabelValues("destroy", result(err)).Inc()
			if err != nil {
				c.Logger.Info("Could not destroy a MIG instance no pod holds", "gpu", g.Index, "profile", inst.Profile, "start", inst.Start, "err", err)
				continue
			}
			delete(c.unheld, k)
			poke(c.Destroyed)
		}
	}
	for k := range c.unheld {
		if !seen[k] {
			delete(c.unheld, k)
		}
	}
}
