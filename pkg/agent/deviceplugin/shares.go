package deviceplugin

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// slotInfix separates a GPU's UUID from a slot's number in a share slot's
// device ID, "<gpu-uuid>-share-<k>", so that PodResources consumers (DCGM)
// see which GPU a share pod uses.
const slotInfix = "-share-"

// slotID is the device ID of slot k of the GPU.
func slotID(uuid string, k int) string { return uuid + slotInfix + strconv.Itoa(k) }

// slotGPU is the UUID of the GPU a slot belongs to, "" if id is no slot.
func slotGPU(id string) string {
	i := strings.LastIndex(id, slotInfix)
	if i <= 0 {
		return ""
	}
	if _, err := strconv.Atoi(id[i+len(slotInfix):]); err != nil {
		return ""
	}
	return id[:i]
}

// shareIntent is a share the scheduler assigned a pod bound to this node
// that has not yet been handed a slot.
type shareIntent struct {
	pod   *v1.Pod
	gpu   int
	uuid  string
	milli int
}

func (in shareIntent) name() string { return in.pod.Namespace + "/" + in.pod.Name }

// requestsSlot says whether one of the pod's containers asks for a share
// slot, which makes the kubelet call the share plugin for it.
func requestsSlot(pod *v1.Pod) bool {
	for _, c := range pod.Spec.Containers {
		if q, ok := c.Resources.Limits[v1.ResourceName(gpu.ResourceShareSlot)]; ok && !q.IsZero() {
			return true
		}
	}
	return false
}

// sharesOf reads the share assignments of the pods bound to this node that
// wait for a slot (pending, asking for one, none handed out yet per given),
// oldest first, as the kubelet admits them. A waiting pod's share is
// refused (returned as bad) when this node cannot honour it: its
// assignment is no single share, names a GPU the node lacks, a GPU another
// pod holds whole, or would take the GPU's shares over 1000m with those of
// the pods holding or (older) waiting for a share of it. Pods that hold
// their devices count by their realized devices where the agent recorded
// them, else by their assignment.
func sharesOf(pods []*v1.Pod, devices []Device, given map[types.UID]string) ([]shareIntent, []badAssignment) {
	byIndex := map[int]string{}
	known := sets.New[string]()
	for _, d := range devices {
		byIndex[d.Index] = d.UUID
		known.Insert(d.UUID)
	}
	wholeBy := map[int]string{}
	milli := map[int]int{}
	users := map[int][]string{}
	var waiting []*v1.Pod
	for _, p := range pods {
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		if p.Status.Phase == v1.PodPending && requestsSlot(p) && given[p.UID] == "" {
			if _, ok := p.Annotations[gpu.AnnotationAssignment]; ok {
				waiting = append(waiting, p)
			}
			continue
		}
		a, ok := heldAssignment(p)
		if !ok {
			continue
		}
		for _, g := range a.GPUs {
			wholeBy[g] = p.Namespace + "/" + p.Name
		}
		for _, s := range a.Shares {
			milli[s.GPU] += s.Milli
			users[s.GPU] = append(users[s.GPU], fmt.Sprintf("%s/%s %dm", p.Namespace, p.Name, s.Milli))
		}
	}
	sort.SliceStable(waiting, func(i, j int) bool {
		return waiting[i].CreationTimestamp.Before(&waiting[j].CreationTimestamp)
	})
	var intents []shareIntent
	var bad []badAssignment
	for _, p := range waiting {
		a, err := gpu.UnmarshalAssignment(p.Annotations[gpu.AnnotationAssignment])
		if err != nil {
			bad = append(bad, badAssignment{p, err.Error()})
			continue
		}
		if len(a.Shares) != 1 || len(a.GPUs) > 0 || len(a.MIG) > 0 {
			bad = append(bad, badAssignment{p, fmt.Sprintf("the pod asks for a GPU share slot, but its assignment %s is not one GPU share", a.Describe())})
			continue
		}
		s := a.Shares[0]
		ids, err := wholeGPUIDs(gpu.Assignment{GPUs: []int{s.GPU}, UUIDs: a.UUIDs}, byIndex, known)
		if err != nil {
			bad = append(bad, badAssignment{p, err.Error()})
			continue
		}
		if owner := wholeBy[s.GPU]; owner != "" {
			bad = append(bad, badAssignment{p, fmt.Sprintf("assignment gives a %dm share of GPU %d, which pod %s holds whole", s.Milli, s.GPU, owner)})
			continue
		}
		if sum := milli[s.GPU] + s.Milli; sum > 1000 {
			bad = append(bad, badAssignment{p, fmt.Sprintf("assignment gives a %dm share of GPU %d, which would take its shares to %dm, over 1000m (held: %s)", s.Milli, s.GPU, sum, strings.Join(users[s.GPU], ", "))})
			continue
		}
		milli[s.GPU] += s.Milli
		users[s.GPU] = append(users[s.GPU], fmt.Sprintf("%s/%s %dm", p.Namespace, p.Name, s.Milli))
		intents = append(intents, shareIntent{pod: p, gpu: s.GPU, uuid: ids[0], milli: s.Milli})
	}
	return intents, bad
}

// heldAssignment is what a pod holds: its realized devices where recorded,
// else its assignment.
func heldAssignment(p *v1.Pod) (gpu.Assignment, bool) {
	for _, key := range []string{gpu.AnnotationRealized, gpu.AnnotationAssignment} {
		if raw, ok := p.Annotations[key]; ok {
			if a, err := gpu.UnmarshalAssignment(raw); err == nil {
				return a, true
			}
		}
	}
	return gpu.Assignment{}, false
}

// narrow keeps the intents of the pods the kubelet is admitting: those it
// lists (PodResources) without a slot. The kubelet adds a pod to the pods
// it lists before it admits it, and admits one pod at a time, so while it
// asks for a slot the pod it asks for is among them; pods the agent's
// informer knows but the kubelet has not taken up yet are not. admitting
// nil (PodResources unreadable), or no intent left, keeps all.
func narrow(intents []shareIntent, admitting sets.Set[string]) []shareIntent {
	if admitting == nil {
		return intents
	}
	var out []shareIntent
	for _, in := range intents {
		if admitting.Has(in.name()) {
			out = append(out, in)
		}
	}
	if len(out) == 0 {
		return intents
	}
	return out
}

// preferredSlot answers GetPreferredAllocation for shares: the
// lowest-numbered available slot of the GPU assigned to the oldest pod the
// kubelet may be admitting, nil without one.
func preferredSlot(intents []shareIntent, admitting sets.Set[string], available []string, size int) []string {
	if size != 1 {
		return nil
	}
	for _, in := range narrow(intents, admitting) {
		var free []int
		for _, id := range available {
			if slotGPU(id) != in.uuid {
				continue
			}
			k, _ := strconv.Atoi(id[len(in.uuid)+len(slotInfix):])
			free = append(free, k)
		}
		if len(free) > 0 {
			return []string{slotID(in.uuid, slices.Min(free))}
		}
	}
	return nil
}

// matchSlot answers Allocate for shares: the oldest pod the kubelet may be
// admitting whose share is of the slot's GPU. It refuses a slot of a GPU
// none of them was assigned (the kubelet chose against the preference, or
// the GPU's slots ran out), and returns nil, nil when no Tessera pod waits.
func matchSlot(intents []shareIntent, admitting sets.Set[string], id string) (*shareIntent, error) {
	uuid := slotGPU(id)
	if uuid == "" {
		return nil, fmt.Errorf("device %s is not a GPU share slot", id)
	}
	cands := narrow(intents, admitting)
	for i := range cands {
		if cands[i].uuid == uuid {
			return &cands[i], nil
		}
	}
	if len(cands) == 0 {
		return nil, nil
	}
	var want []string
	for _, in := range cands {
		want = append(want, fmt.Sprintf("%s: %dm of GPU %d (%s)", in.name(), in.milli, in.gpu, in.uuid))
	}
	return nil, fmt.Errorf("the kubelet chose share slot %s of GPU %s, but the pods waiting for a share here were assigned other GPUs (%s)", id, uuid, strings.Join(want, "; "))
}
