package deviceplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/internal/unixgrpc"
)

// PodResourcesSocket is the kubelet's PodResources API socket (the one DCGM
// exporter and NFD's topology updater read).
const PodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// Reconciler reports what the kubelet really gave each pod: it reads the
// kubelet's PodResources API (there is no watch, so it polls) and writes
// the GPUs a pod holds as the annotation tessera.dev/gpu-realized on every
// pod whose devices are not its assignment: pods another scheduler placed
// (no assignment), and Tessera pods the kubelet gave other GPUs (after a
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
	held, err := r.list(ctx)
	if err != nil {
		return err
	}
	byUUID := map[string]int{}
	for _, d := range r.Devices {
		byUUID[d.UUID] = d.Index
	}
	for _, pod := range r.Pods() {
		uuids := held[pod.Namespace+"/"+pod.Name]
		if len(uuids) == 0 || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
			continue
		}
		realized, err := realizedOf(uuids, byUUID)
		if err != nil {
			r.Logger.Info("The kubelet reports devices this agent does not serve", "pod", klog.KObj(pod), "err", err)
			continue
		}
		if a, err := gpu.UnmarshalAssignment(pod.Annotations[gpu.AnnotationAssignment]); err == nil && slices.Equal(a.Normalize().GPUs, realized.GPUs) {
			continue
		} else if err == nil && r.warned[pod.UID] != strings.Join(uuids, ",") && r.Events != nil {
			r.warned[pod.UID] = strings.Join(uuids, ",")
			r.Events.Eventf(pod, v1.EventTypeWarning, "GPUAssignmentMismatch", "the kubelet gave this pod GPUs %s, not its assignment %s; Tessera now accounts the GPUs it holds", realized.Describe(), a.Describe())
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
			r.Logger.Info("Could not record the GPUs a pod holds", "pod", klog.KObj(pod), "err", err)
			continue
		}
		r.Logger.Info("Recorded the GPUs the kubelet gave a pod", "pod", klog.KObj(pod), "gpus", realized.Describe())
	}
	return nil
}

// list returns, per pod (namespace/name), the GPU UUIDs the kubelet
// allocated to its containers.
func (r *Reconciler) list(ctx context.Context) (map[string][]string, error) {
	conn, err := unixgrpc.Dial(r.Socket)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := podresourcesapi.NewPodResourcesListerClient(conn).List(ctx, &podresourcesapi.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("PodResources List at %s: %w", r.Socket, err)
	}
	held := map[string][]string{}
	for _, p := range resp.PodResources {
		key := p.Namespace + "/" + p.Name
		for _, c := range p.Containers {
			for _, d := range c.Devices {
				if d.ResourceName == ResourceGPU {
					held[key] = append(held[key], d.DeviceIds...)
				}
			}
		}
	}
	return held, nil
}

// realizedOf turns the UUIDs a pod holds into an assignment of whole GPUs
// with their UUIDs.
func realizedOf(uuids []string, byUUID map[string]int) (gpu.Assignment, error) {
	uuids = slices.Clone(uuids)
	sort.Slice(uuids, func(i, j int) bool { return byUUID[uuids[i]] < byUUID[uuids[j]] })
	a := gpu.Assignment{}
	for _, u := range uuids {
		idx, ok := byUUID[u]
		if !ok {
			return gpu.Assignment{}, fmt.Errorf("device %s", u)
		}
		a.GPUs = append(a.GPUs, idx)
	}
	a.UUIDs = uuids
	return a, nil
}
