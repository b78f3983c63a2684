package deviceplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
)

// Reconciler reports what the kubelet really gave each pod: it reads the
// kubelet's PodResources API (there is no watch, so it polls) and writes
// the GPUs a pod holds as the annotation tessera.dev/gpu-realized on every
// pod whose devices are not its assignment: pods another scheduler placed
// (no assignment), and Tessera pods the kubelet gave other GPUs or shares (after a
// kubelet restart, or another device plugin), with an Event. GPUPlacement
// accounts a pod by its realized devices where it has them, so the
// scheduler's ledger follows the node.
type Reconciler struct {
	Client  kubernetes.Interface
	Devices []Device
	// Pods lists the pods bound to this node.
	Pods func() []*v1.Pod
	// Socket is the PodResources socket (default PodResourcesSocket).
	Socket   string
	Interval time.Duration
	Events   record.EventRecorder
	Logger   klog.Logger

	warned map[types.UID]string
}

// Run reconciles every Interval (default 5s) until ctx ends, and at once
// whenever poke receives.
func (r *Reconciler) Run(ctx context.Context, poke <-chan struct{}) {
	if r.Socket == "" {
		r.Socket = PodResourcesSocket
	}
	if r.Interval == 0 {
		r.Interval = 5 * time.Second
	}
	r.warned = map[types.UID]string{}
	tick := time.NewTicker(r.Interval)
	defer tick.Stop()
	for {
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.Logger.V(2).Info("Reading the kubelet's PodResources failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-poke:
			// Let the kubelet record the allocation it just asked for.
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// Sync reconciles once.
func (r *Reconciler) Sync(ctx context.Context) error {
	listed, err := listPodResources(ctx, r.Socket)
	if err != nil {
		return err
	}
	gpus := devicesOf(listed, ResourceGPU)
	slots := devicesOf(listed, ResourceShareSlot)
	for _, pod := range r.Pods() {
		key := pod.Namespace + "/" + pod.Name
		if len(gpus[key])+len(slots[key]) == 0 || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
			continue
		}
		a, aerr := gpu.UnmarshalAssignment(pod.Annotations[gpu.AnnotationAssignment])
		milli := 0
		if aerr == nil && len(a.Shares) == 1 {
			milli = a.Shares[0].Milli
		} else if m, err := kube.ShareMilli(pod); err == nil {
			milli = m
		}
		var mig []gpu.MIGSlot
		if aerr == nil {
			mig = a.MIG // created as assigned, or refused: never others
		}
		realized, err := realizedOf(gpus[key], slots[key], milli, mig, r.Devices)
		if err != nil {
			r.Logger.Info("The kubelet reports devices this agent does not serve", "pod", klog.KObj(pod), "err", err)
			continue
		}
		held := strings.Join(append(slices.Clone(gpus[key]), slots[key]...), ",")
		if aerr == nil && sameDevices(a, realized) {
			continue
		} else if aerr == nil && r.warned[pod.UID] != held {
			r.warned[pod.UID] = held
			resource := ResourceGPU
			if len(slots[key]) > 0 {
				resource = ResourceShareSlot
			}
			mismatches.WithLabelValues(resource).Inc()
			if r.Events != nil {
				r.Events.Eventf(pod, v1.EventTypeWarning, "GPUAssignmentMismatch", "the kubelet gave this pod %s, not its assignment %s; Tessera now accounts the devices it holds", realized.Describe(), a.Describe())
			}
		}
		raw, err := gpu.MarshalAssignment(realized)
		if err != nil {
			return err
		}
		if pod.Annotations[gpu.AnnotationRealized] == raw {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{gpu.AnnotationRealized: raw}}})
		if _, err := r.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			r.Logger.Info("Could not record the devices a pod holds", "pod", klog.KObj(pod), "err", err)
			continue
		}
		r.Logger.Info("Recorded the devices the kubelet gave a pod", "pod", klog.KObj(pod), "devices", realized.Describe())
	}
	return nil
}

// sameDevices says whether a pod holds the devices of its assignment: the
// same whole GPUs, and shares of the same GPUs.
func sameDevices(a, held gpu.Assignment) bool {
	a, held = a.Normalize(), held.Normalize()
	shareGPUs := func(x gpu.Assignment) []int {
		var out []int
		for _, s := range x.Shares {
			out = append(out, s.GPU)
		}
		return out
	}
	return slices.Equal(a.GPUs, held.GPUs) && slices.Equal(shareGPUs(a), shareGPUs(held))
}

// realizedOf turns the GPU UUIDs and share slots a pod holds into an
// assignment with UUIDs: whole GPUs, a share of milli of each slot's GPU,
// and the MIG slots given (the agent hands out MIG instances only as
// assigned, so it has nothing else to report of them).
func realizedOf(uuids, slots []string, milli int, mig []gpu.MIGSlot, devices []Device) (gpu.Assignment, error) {
	byUUID := map[string]int{}
	byIndex := map[int]string{}
	for _, d := range devices {
		byUUID[d.UUID] = d.Index
		byIndex[d.Index] = d.UUID
	}
	a := gpu.Assignment{}
	for _, u := range uuids {
		idx, ok := byUUID[u]
		if !ok {
			return gpu.Assignment{}, fmt.Errorf("device %s", u)
		}
		a.GPUs = append(a.GPUs, idx)
	}
	for _, s := range slots {
		idx, ok := byUUID[slotGPU(s)]
		if !ok {
			return gpu.Assignment{}, fmt.Errorf("device %s", s)
		}
		a.Shares = append(a.Shares, gpu.Share{GPU: idx, Milli: milli})
	}
	a.MIG = mig
	a = a.Normalize()
	for _, d := range a.Devices() {
		if byIndex[d] == "" {
			a.UUIDs = nil // a MIG GPU: a partial list would be misread
			break
		}
		a.UUIDs = append(a.UUIDs, byIndex[d])
	}
	return a, nil
}
