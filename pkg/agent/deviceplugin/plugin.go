// Package deviceplugin is tessera-agent's kubelet device plugin for whole
// GPUs (nvidia.com/gpu): it makes the scheduler's device choice the one the
// container gets.
//
// The kubelet never tells a device plugin which pod it allocates for; the
// plugin finds out from the pods bound to its node. GetPreferredAllocation
// answers with the devices the scheduler wrote in the pod's
// tessera.dev/gpu-assignment annotation (the kubelet takes that answer
// when its Topology Manager gives no NUMA hint), and Allocate checks the
// devices the kubelet chose against the assignments: a Tessera pod gets
// exactly its assigned GPUs or fails admission with the reason, never
// other GPUs silently. Pods another scheduler placed (no assignment) get
// devices no Tessera pod of the node is waiting for.
//
// Device IDs are GPU UUIDs, as NVIDIA's device plugin names them, and the
// container learns its GPUs through NVIDIA_VISIBLE_DEVICES (the NVIDIA
// container runtime's interface, and NVIDIA's device plugin's default
// strategy). The plugin replaces NVIDIA's device plugin on a node: two
// plugins serving nvidia.com/gpu would take turns owning the resource.
package deviceplugin

import (
	"context"
	"fmt"
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

// ResourceGPU is the resource the plugin serves.
const ResourceGPU = "nvidia.com/gpu"

// ResourceShareSlot is the resource the share plugin serves.
const ResourceShareSlot = gpu.ResourceShareSlot

// socketName is the plugin's socket in the kubelet's device-plugin
// directory.
const socketName = "tessera-gpu.sock"

// Plugin serves one resource of the node's GPUs to the kubelet: whole GPUs
// (nvidia.com/gpu, the default), or MIG instances of one profile
// (nvidia.com/mig-<profile>, see MIGPlugins).
type Plugin struct {
	// Devices are the node's whole GPUs; with Resource unset the plugin
	// serves them.
	Devices []Device
	// Resource is the resource served (default nvidia.com/gpu).
	Resource string
	// IDs are the device IDs advertised (default the Devices' UUIDs).
	IDs []string
	// Assigned maps a pod's assignment to the IDs of Resource it was
	// assigned (default: its whole GPUs among Devices).
	Assigned func(gpu.Assignment) ([]string, error)
	// Prepare, if set, readies the devices the kubelet allocated to a
	// container (creating MIG instances) and returns what the container
	// sees of them, as NVIDIA_VISIBLE_DEVICES; by default the IDs
	// themselves. An error fails the container's admission.
	Prepare func(ids []string) ([]string, error)
	// CDI hands devices to containers by CDI device names (CDIKind)
	// instead of NVIDIA_VISIBLE_DEVICES.
	CDI bool
	// Pods lists the pods bound to this node (an informer's lister).
	Pods func() []*v1.Pod
	// Dir is the kubelet's device-plugin directory (default
	// /var/lib/kubelet/device-plugins/), where kubelet.sock is.
	Dir string
	// Events, if set, records why a pod's devices were refused.
	Events record.EventRecorder
	// Allocated, if set, is poked (without blocking) after every
	// allocation, so that the Reconciler reports it soon.
	Allocated chan<- struct{}
	// WaitForPod bounds how long Allocate waits for the pod's assignment to
	// reach the agent's informer before deciding (default 5s).
	WaitForPod time.Duration
	Logger     klog.Logger

	mu    sync.Mutex
	given map[types.UID]sets.Set[string]
	// reported is the reason last reported per pod whose assignment
	// cannot be honoured.
	reported map[types.UID]string

	pluginapi.UnimplementedDevicePluginServer
}

// Run serves the plugin and registers it with the kubelet until ctx ends,
// serving and registering again whenever the kubelet restarts.
func (p *Plugin) Run(ctx context.Context) error {
	if p.WaitForPod == 0 {
		p.WaitForPod = 5 * time.Second
	}
	p.init()
	socket := socketName
	if p.Resource != ResourceGPU {
		socket = "tessera-" + strings.NewReplacer("/", "-", "nvidia.com", "").Replace(p.Resource) + ".sock"
	}
	return serve(ctx, endpoint{dir: p.Dir, socket: socket, resource: p.Resource, devices: len(p.IDs), server: p, logger: p.Logger})
}

// init fills in the defaults: whole GPUs.
func (p *Plugin) init() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.given == nil {
		p.given = map[types.UID]sets.Set[string]{}
		p.reported = map[types.UID]string{}
	}
	if p.Resource == "" {
		p.Resource = ResourceGPU
	}
	if p.IDs == nil {
		for _, d := range p.Devices {
			p.IDs = append(p.IDs, d.UUID)
		}
	}
	if p.Assigned == nil {
		p.Assigned = wholeGPUs(p.Devices)
	}
}

// GetDevicePluginOptions says the plugin answers GetPreferredAllocation.
func (p *Plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return preferredOptions, nil
}

// ListAndWatch sends the node's GPUs, all healthy, and keeps the stream
// open until the kubelet or the plugin stops.
func (p *Plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	p.init()
	return sendDevices(stream, p.IDs)
}

// GetPreferredAllocation answers with the assigned devices of the pod the
// request is for (see preferred).
func (p *Plugin) GetPreferredAllocation(ctx context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	p.init()
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		pick := p.preferredWaiting(ctx, cr)
		p.Logger.V(2).Info("Preferred allocation", "available", cr.AvailableDeviceIDs, "size", cr.AllocationSize, "preferred", pick)
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: pick})
	}
	return resp, nil
}

// preferredWaiting is preferred, waiting up to WaitForPod for the pod the
// kubelet is admitting to reach the agent's informer: the kubelet learns of
// a pod from its own watch and may ask before the agent has seen the pod's
// assignment. It stops waiting as soon as a Tessera pod's assignment fits
// the request or a pod without one (another scheduler's) is waiting.
func (p *Plugin) preferredWaiting(ctx context.Context, cr *pluginapi.ContainerPreferredAllocationRequest) []string {
	deadline := time.Now().Add(p.WaitForPod)
	size := int(cr.AllocationSize)
	for {
		intents := p.intents()
		for _, in := range intents {
			if in.fits(size, false) && sets.New(cr.AvailableDeviceIDs...).HasAll(in.remaining()[:size]...) {
				return preferred(intents, cr.AvailableDeviceIDs, cr.MustIncludeDeviceIDs, size)
			}
		}
		if p.foreignWaiting() || time.Now().After(deadline) {
			return preferred(intents, cr.AvailableDeviceIDs, cr.MustIncludeDeviceIDs, size)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Allocate hands the kubelet's chosen devices to the container if they are
// a pod's assignment (or a foreign pod's free devices), and fails the
// container's admission otherwise.
func (p *Plugin) Allocate(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	p.init()
	resp := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		in, err := p.matchWaiting(ctx, cr.DevicesIds)
		if err != nil {
			p.Logger.Info("Refusing devices", "resource", p.Resource, "devices", cr.DevicesIds, "err", err)
			allocations.WithLabelValues(p.Resource, "refused").Inc()
			return nil, err
		}
		visible := cr.DevicesIds
		if p.Prepare != nil {
			if visible, err = p.Prepare(cr.DevicesIds); err != nil {
				err = fmt.Errorf("preparing %s %s: %w", p.Resource, strings.Join(cr.DevicesIds, ","), err)
				p.Logger.Info("Refusing devices", "resource", p.Resource, "devices", cr.DevicesIds, "err", err)
				if in != nil && p.Events != nil {
					p.Events.Eventf(in.pod, v1.EventTypeWarning, "GPUAllocationRefused", "tessera-agent could not prepare the assigned devices: %v", err)
				}
				allocations.WithLabelValues(p.Resource, "refused").Inc()
				return nil, err
			}
		}
		if in != nil {
			p.mu.Lock()
			g := p.given[in.pod.UID]
			if g == nil {
				g = sets.New[string]()
				p.given[in.pod.UID] = g
			}
			g.Insert(cr.DevicesIds...)
			p.mu.Unlock()
			p.Logger.Info("Allocated the assigned devices", "resource", p.Resource, "pod", klog.KObj(in.pod), "devices", cr.DevicesIds, "visible", visible)
		} else {
			p.Logger.Info("Allocated devices to a pod without a Tessera assignment", "resource", p.Resource, "devices", cr.DevicesIds, "visible", visible)
		}
		allocations.WithLabelValues(p.Resource, "allocated").Inc()
		resp.ContainerResponses = append(resp.ContainerResponses, containerResponse(visible, p.CDI, nil))
	}
	poke(p.Allocated)
	return resp, nil
}

// matchWaiting matches the devices against the assignments, waiting up to
// WaitForPod for the pod to reach the informer when nothing matches yet.
func (p *Plugin) matchWaiting(ctx context.Context, ids []string) (*intent, error) {
	deadline := time.Now().Add(p.WaitForPod)
	for {
		intents, bad := p.assignments()
		foreign := p.foreignWaiting()
		in, err := match(intents, ids, foreign)
		if in == nil && err == nil && !foreign {
			// The request is a Tessera pod's; if the only ones waiting
			// have assignments this node cannot honour, say why.
			for _, b := range bad {
				if b.pod.Status.Phase == v1.PodPending {
					err = fmt.Errorf("pod %s/%s: %s", b.pod.Namespace, b.pod.Name, b.reason)
					break
				}
			}
		}
		if in != nil || time.Now().After(deadline) {
			if err != nil {
				p.refused(intents, err)
			}
			return in, err
		}
		if err == nil && foreign {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// refused records an Event on the pods the refused devices were meant for.
func (p *Plugin) refused(intents []intent, err error) {
	if p.Events == nil {
		return
	}
	for _, in := range intents {
		if len(in.remaining()) > 0 && in.pod.Status.Phase == v1.PodPending {
			p.Events.Eventf(in.pod, v1.EventTypeWarning, "GPUAllocationRefused", "tessera-agent refused devices the kubelet chose: %v", err)
		}
	}
}

func (p *Plugin) intents() []intent {
	intents, _ := p.assignments()
	return intents
}

// assignments reads the node's pods' assignments, recording an Event on a
// pending pod whose assignment cannot be honoured here.
func (p *Plugin) assignments() ([]intent, []badAssignment) {
	p.mu.Lock()
	given := map[types.UID]sets.Set[string]{}
	for uid, g := range p.given {
		given[uid] = g.Clone()
	}
	p.mu.Unlock()
	intents, bad := intentsOf(p.Pods(), p.Resource, p.Assigned, given)
	for _, b := range bad {
		// Every request reads the assignments again; say it once.
		p.mu.Lock()
		seen := p.reported[b.pod.UID] == b.reason
		p.reported[b.pod.UID] = b.reason
		p.mu.Unlock()
		if seen {
			continue
		}
		p.Logger.Info("Pod's GPU assignment cannot be honoured on this node", "pod", klog.KObj(b.pod), "reason", b.reason)
		if p.Events != nil && b.pod.Status.Phase == v1.PodPending {
			p.Events.Eventf(b.pod, v1.EventTypeWarning, "GPUAssignmentInvalid", "tessera-agent cannot honour %s: %s", "tessera.dev/gpu-assignment", b.reason)
		}
	}
	return intents, bad
}

// foreignWaiting reports whether a pod without a Tessera assignment that
// requests the resource is bound here and has not started.
func (p *Plugin) foreignWaiting() bool {
	for _, pod := range p.Pods() {
		if pod.Status.Phase != v1.PodPending {
			continue
		}
		if _, ok := pod.Annotations["tessera.dev/gpu-assignment"]; ok {
			continue
		}
		for _, c := range pod.Spec.Containers {
			if _, ok := c.Resources.Limits[v1.ResourceName(p.Resource)]; ok {
				return true
			}
		}
	}
	return false
}
