package deviceplugin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// SlotsPerGPU is how many share slots each GPU offers: more than the pods
// a kubelet runs by default (110) could ever put on one GPU of an 8-GPU
// node with shares of 10m or more. A slot is only the kubelet's ticket to
// ask the plugin; the share's size is the scheduler's.
const SlotsPerGPU = 100

// shareSocketName is the share plugin's socket in the kubelet's
// device-plugin directory.
const shareSocketName = "tessera-gpu-share.sock"

// SharePlugin serves GPU shares to the kubelet as slots
// (gpu.ResourceShareSlot), SlotsPerGPU per GPU, with device IDs
// "<gpu-uuid>-share-<k>". A share pod's first container asks for one slot
// (added by the admission policy shipped with the plugin); the plugin
// prefers a slot of the GPU the scheduler assigned the pod's share, and
// Allocate hands the container that GPU, through NVIDIA_VISIBLE_DEVICES as
// for whole GPUs, with TESSERA_GPU_MILLI telling it its share. Nothing
// limits what the container uses of the GPU: a share is a placement, not
// an isolation (see the README).
//
// Like the whole-GPU plugin it is never told the pod; it finds it among the
// pods bound to the node that wait for a share, narrowed to those the
// kubelet is admitting (listed by PodResources without a slot), and fails
// the container's admission when the slot the kubelet chose is not of its
// GPU, when the assignment cannot be honoured (see sharesOf), and for pods
// no Tessera scheduler placed.
type SharePlugin struct {
	// Devices are the node's GPUs that may be shared (not MIG-enabled).
	Devices []Device
	// Pods lists the pods bound to this node (an informer's lister).
	Pods func() []*v1.Pod
	// Admitting lists, as namespace/name, the pods the kubelet knows that
	// hold no share slot yet (from PodResources); nil, or an error, means
	// unknown.
	Admitting func(ctx context.Context) (sets.Set[string], error)
	// Dir is the kubelet's device-plugin directory.
	Dir string
	// CDI hands the GPU to containers by CDI device name (CDIKind).
	CDI bool
	// Events, if set, records why a pod's share was refused.
	Events record.EventRecorder
	// Allocated, if set, is poked (without blocking) after every
	// allocation.
	Allocated chan<- struct{}
	// WaitForPod bounds how long a request waits for the pod's assignment
	// to reach the agent's informer (default 5s).
	WaitForPod time.Duration
	Logger     klog.Logger

	mu sync.Mutex
	// given is the GPU UUID whose slot each pod was handed.
	given    map[types.UID]string
	reported map[types.UID]string

	pluginapi.UnimplementedDevicePluginServer
}

// Run serves the plugin and registers it with the kubelet until ctx ends.
func (p *SharePlugin) Run(ctx context.Context) error {
	p.init()
	return serve(ctx, endpoint{dir: p.Dir, socket: shareSocketName, resource: ResourceShareSlot, devices: len(p.Devices) * SlotsPerGPU, server: p, logger: p.Logger})
}

func (p *SharePlugin) init() {
	if p.WaitForPod == 0 {
		p.WaitForPod = 5 * time.Second
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.given == nil {
		p.given = map[types.UID]string{}
		p.reported = map[types.UID]string{}
	}
}

// GetDevicePluginOptions says the plugin answers GetPreferredAllocation.
func (p *SharePlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return preferredOptions, nil
}

// ListAndWatch sends every GPU's slots, all healthy, and keeps the stream
// open.
func (p *SharePlugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	var ids []string
	for _, d := range p.Devices {
		for k := 0; k < SlotsPerGPU; k++ {
			ids = append(ids, slotID(d.UUID, k))
		}
	}
	return sendDevices(stream, ids)
}

// GetPreferredAllocation answers with a slot of the GPU assigned to the
// pod the kubelet is admitting, waiting up to WaitForPod for its
// assignment to reach the informer.
func (p *SharePlugin) GetPreferredAllocation(ctx context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	p.init()
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		var pick []string
		deadline := time.Now().Add(p.WaitForPod)
		for {
			intents, _ := p.shares()
			pick = preferredSlot(intents, p.admitting(ctx), cr.AvailableDeviceIDs, int(cr.AllocationSize))
			if pick != nil || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		p.Logger.V(2).Info("Preferred share slot", "size", cr.AllocationSize, "preferred", pick)
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: pick})
	}
	return resp, nil
}

// Allocate hands the container the GPU of its pod's share, or fails its
// admission with the reason.
func (p *SharePlugin) Allocate(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	p.init()
	resp := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		in, err := p.matchWaiting(ctx, cr.DevicesIds)
		if err != nil {
			p.Logger.Info("Refusing a share slot", "devices", cr.DevicesIds, "err", err)
			allocations.WithLabelValues(ResourceShareSlot, "refused").Inc()
			return nil, err
		}
		allocations.WithLabelValues(ResourceShareSlot, "allocated").Inc()
		p.mu.Lock()
		p.given[in.pod.UID] = in.uuid
		p.mu.Unlock()
		p.Logger.Info("Allocated the assigned GPU share", "pod", klog.KObj(in.pod), "gpu", in.gpu, "uuid", in.uuid, "milli", in.milli, "slot", cr.DevicesIds[0])
		resp.ContainerResponses = append(resp.ContainerResponses, containerResponse([]string{in.uuid}, p.CDI, map[string]string{"TESSERA_GPU_MILLI": strconv.Itoa(in.milli)}))
	}
	poke(p.Allocated)
	return resp, nil
}

// matchWaiting finds the pod a slot is for, waiting up to WaitForPod for
// its assignment to reach the informer.
func (p *SharePlugin) matchWaiting(ctx context.Context, ids []string) (*shareIntent, error) {
	if len(ids) != 1 {
		return nil, fmt.Errorf("a container asks for %d GPU share slots (%s); a share pod asks for one, %s: 1, and says its share with annotation %s", len(ids), strings.Join(ids, ","), gpu.ResourceShareSlot, gpu.AnnotationShare)
	}
	deadline := time.Now().Add(p.WaitForPod)
	for {
		intents, bad := p.shares()
		admitting := p.admitting(ctx)
		in, err := matchSlot(intents, admitting, ids[0])
		if in != nil {
			return in, nil
		}
		if err != nil {
			p.refused(narrow(intents, admitting), err)
			return nil, err
		}
		// No Tessera pod waits for this slot: the pod is one whose
		// assignment cannot be honoured, one Tessera did not place, or one
		// the informer has not seen yet.
		for _, b := range bad {
			if admitting == nil || admitting.Has(b.pod.Namespace+"/"+b.pod.Name) || time.Now().After(deadline) {
				return nil, fmt.Errorf("pod %s/%s: %s", b.pod.Namespace, b.pod.Name, b.reason)
			}
		}
		if f := p.foreignWaiting(admitting); f != "" && (admitting != nil || time.Now().After(deadline)) {
			return nil, fmt.Errorf("pod %s asks for a GPU share slot but no Tessera scheduler placed it (it has no %s): GPU shares are handed out only to pods a Tessera profile scheduled (spec.schedulerName)", f, gpu.AnnotationAssignment)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no pod bound to this node waits for a GPU share (slot %s)", ids[0])
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// shares reads the node's pods' share assignments, recording an Event once
// per reason on a pod whose share cannot be honoured.
func (p *SharePlugin) shares() ([]shareIntent, []badAssignment) {
	p.mu.Lock()
	given := make(map[types.UID]string, len(p.given))
	for uid, g := range p.given {
		given[uid] = g
	}
	p.mu.Unlock()
	intents, bad := sharesOf(p.Pods(), p.Devices, given)
	for _, b := range bad {
		p.mu.Lock()
		seen := p.reported[b.pod.UID] == b.reason
		p.reported[b.pod.UID] = b.reason
		p.mu.Unlock()
		if seen {
			continue
		}
		p.Logger.Info("Pod's GPU share cannot be honoured on this node", "pod", klog.KObj(b.pod), "reason", b.reason)
		if p.Events != nil {
			p.Events.Eventf(b.pod, v1.EventTypeWarning, "GPUAssignmentInvalid", "tessera-agent cannot honour %s: %s", gpu.AnnotationAssignment, b.reason)
		}
	}
	return intents, bad
}

// admitting is Admitting's answer, nil when unknown.
func (p *SharePlugin) admitting(ctx context.Context) sets.Set[string] {
	if p.Admitting == nil {
		return nil
	}
	s, err := p.Admitting(ctx)
	if err != nil {
		p.Logger.V(2).Info("Reading the pods the kubelet admits failed", "err", err)
		return nil
	}
	return s
}

// foreignWaiting names a pending pod that asks for a slot and has no
// assignment, preferring one the kubelet is admitting.
func (p *SharePlugin) foreignWaiting(admitting sets.Set[string]) string {
	var first string
	for _, pod := range p.Pods() {
		if pod.Status.Phase != v1.PodPending || !requestsSlot(pod) {
			continue
		}
		if _, ok := pod.Annotations[gpu.AnnotationAssignment]; ok {
			continue
		}
		name := pod.Namespace + "/" + pod.Name
		if admitting != nil && admitting.Has(name) {
			return name
		}
		if first == "" && admitting == nil {
			first = name
		}
	}
	return first
}

// refused records an Event on the pods the refused slot may have been for.
func (p *SharePlugin) refused(intents []shareIntent, err error) {
	if p.Events == nil {
		return
	}
	for _, in := range intents {
		p.Events.Eventf(in.pod, v1.EventTypeWarning, "GPUAllocationRefused", "tessera-agent refused the GPU share slot the kubelet chose: %v", err)
	}
}
