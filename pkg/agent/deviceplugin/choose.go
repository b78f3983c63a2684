package deviceplugin

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// Device is one whole GPU the plugin serves.
type Device struct {
	// Index is the GPU's index, as in the scheduler's assignment.
	Index int
	// UUID is the device ID the kubelet sees, as NVIDIA's device plugin
	// names GPUs, so that PodResources consumers (DCGM) keep working.
	UUID string
}

// intent is the devices of one resource (whole GPUs, or MIG instances of
// one profile) the scheduler assigned one pod bound to this node, as device
// IDs, and those of them already handed to its containers.
type intent struct {
	pod   *v1.Pod
	ids   []string
	given sets.Set[string]
	// sizes are the device counts of the pod's containers that ask for
	// the resource; the kubelet allocates for one container at a time.
	sizes []int
}

// fits says whether a request for size devices can be (a container of)
// this pod: all its remaining devices, or, for a pod with several GPU
// containers, as many as one of them asks for.
func (in intent) fits(size int, exact bool) bool {
	rem := len(in.remaining())
	if rem == size {
		return true
	}
	return !exact && len(in.sizes) > 1 && rem > size && slices.Contains(in.sizes, size)
}

func (in intent) remaining() []string {
	var out []string
	for _, id := range in.ids {
		if !in.given.Has(id) {
			out = append(out, id)
		}
	}
	return out
}

func (in intent) name() string { return in.pod.Namespace + "/" + in.pod.Name }

// badAssignment is a pod whose assignment cannot be honoured on this node.
type badAssignment struct {
	pod    *v1.Pod
	reason string
}

// assignedFunc maps a pod's assignment to the device IDs of one resource it
// was assigned (none if it holds none of that resource), or says why this
// node cannot honour it.
type assignedFunc func(gpu.Assignment) ([]string, error)

// wholeGPUs is the assignedFunc of nvidia.com/gpu on a node with devices:
// the assignment's whole GPUs by UUID.
func wholeGPUs(devices []Device) assignedFunc {
	byIndex := map[int]string{}
	known := sets.New[string]()
	for _, d := range devices {
		byIndex[d.Index] = d.UUID
		known.Insert(d.UUID)
	}
	return func(a gpu.Assignment) ([]string, error) {
		if len(a.GPUs) == 0 {
			return nil, nil
		}
		return wholeGPUIDs(a, byIndex, known)
	}
}

// intentsOf reads the assignments of one resource (as assigned maps them
// to device IDs) of the pods bound to this node that have not finished.
// given holds, per pod, the IDs already handed to its containers. A pod
// whose assignment this node cannot honour (a GPU it lacks, by index or
// UUID) is returned as bad, not as an intent.
func intentsOf(pods []*v1.Pod, resource string, assigned assignedFunc, given map[types.UID]sets.Set[string]) ([]intent, []badAssignment) {
	var intents []intent
	var bad []badAssignment
	for _, p := range pods {
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		raw, ok := p.Annotations[gpu.AnnotationAssignment]
		if !ok {
			continue
		}
		a, err := gpu.UnmarshalAssignment(raw)
		if err != nil {
			bad = append(bad, badAssignment{p, err.Error()})
			continue
		}
		ids, err := assigned(a)
		if err != nil {
			bad = append(bad, badAssignment{p, err.Error()})
			continue
		}
		if len(ids) == 0 {
			continue
		}
		g := given[p.UID]
		if g == nil {
			g = sets.New[string]()
		}
		var sizes []int
		for _, c := range p.Spec.Containers {
			if q, ok := c.Resources.Limits[v1.ResourceName(resource)]; ok && q.Value() > 0 {
				sizes = append(sizes, int(q.Value()))
			}
		}
		intents = append(intents, intent{pod: p, ids: ids, given: g, sizes: sizes})
	}
	// Oldest first: the kubelet admits a batch of pods in creation order.
	sort.SliceStable(intents, func(i, j int) bool {
		return intents[i].pod.CreationTimestamp.Before(&intents[j].pod.CreationTimestamp)
	})
	return intents, bad
}

// wholeGPUIDs maps an assignment's whole GPUs to device IDs: its UUIDs when
// it carries them (they must be this node's), else its indices through the
// node's devices.
func wholeGPUIDs(a gpu.Assignment, byIndex map[int]string, known sets.Set[string]) ([]string, error) {
	devs := a.Devices()
	var ids []string
	for _, idx := range a.GPUs {
		var id string
		if len(a.UUIDs) == len(devs) {
			id = a.UUIDs[slices.Index(devs, idx)]
			if !known.Has(id) {
				return nil, fmt.Errorf("assignment names GPU %d as %s, which this node does not have", idx, id)
			}
			if byIndex[idx] != id {
				return nil, fmt.Errorf("assignment names GPU %d as %s, but this node's GPU %d is %s", idx, id, idx, orNone(byIndex[idx]))
			}
		} else {
			id = byIndex[idx]
			if id == "" {
				return nil, fmt.Errorf("assignment names GPU %d, which this node does not have", idx)
			}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// preferred answers GetPreferredAllocation: the remaining devices of the
// oldest pod whose remaining assignment is the request's size (or, for a
// pod of several GPU containers, holds one container's), all available,
// including what must be included. Without such a pod (a
// pod another scheduler placed), it prefers available devices that no
// Tessera pod of this node is waiting for. It returns nil when it has no
// answer the request can use.
func preferred(intents []intent, available, mustInclude []string, size int) []string {
	avail := sets.New(available...)
	for _, exact := range []bool{true, false} {
		for _, in := range intents {
			if !in.fits(size, exact) {
				continue
			}
			pick := in.remaining()[:size]
			if !avail.HasAll(pick...) || !sets.New(pick...).HasAll(mustInclude...) {
				continue
			}
			return slices.Clone(pick)
		}
	}
	reserved := sets.New[string]()
	for _, in := range intents {
		reserved.Insert(in.remaining()...)
	}
	pick := slices.Clone(mustInclude)
	for _, id := range available {
		if len(pick) == size {
			break
		}
		if !reserved.Has(id) && !slices.Contains(pick, id) {
			pick = append(pick, id)
		}
	}
	if len(pick) != size {
		return nil
	}
	return pick
}

// match answers Allocate: the pod whose remaining assignment is exactly the
// devices the kubelet chose (or, for a pod of several GPU containers,
// contains one container's worth of them), oldest first. With none, the
// devices are refused if any of them is assigned to a Tessera pod of this
// node that has not received it (the kubelet would give one pod's GPUs to
// another), or if no pod without an assignment (one another scheduler
// placed) is waiting for this resource, since the request is then a Tessera
// pod's and the kubelet chose other devices than its own (it does when its
// Topology Manager's NUMA hint overrides the preference). Otherwise the
// devices are accepted as a foreign pod's (nil intent, nil error).
func match(intents []intent, ids []string, foreignWaiting bool) (*intent, error) {
	want := sets.New(ids...)
	for _, exact := range []bool{true, false} {
		for i := range intents {
			if intents[i].fits(len(ids), exact) && sets.New(intents[i].remaining()...).IsSuperset(want) {
				return &intents[i], nil
			}
		}
	}
	for _, in := range intents {
		for _, id := range ids {
			if slices.Contains(in.remaining(), id) {
				return nil, fmt.Errorf("the kubelet chose devices %s, but %s is assigned to pod %s (whose remaining devices are %s) and no pod of this node was assigned %s",
					strings.Join(ids, ","), id, in.name(), strings.Join(in.remaining(), ","), strings.Join(ids, ","))
			}
		}
	}
	if !foreignWaiting {
		var waiting []string
		for _, in := range intents {
			if rem := in.remaining(); len(rem) > 0 {
				waiting = append(waiting, fmt.Sprintf("%s: %s", in.name(), strings.Join(rem, ",")))
			}
		}
		if len(waiting) > 0 {
			return nil, fmt.Errorf("the kubelet chose devices %s, which are not what any pod of this node was assigned (%s)", strings.Join(ids, ","), strings.Join(waiting, "; "))
		}
	}
	return nil, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
