package deviceplugin

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/tessera-sched/tessera/pkg/internal/unixgrpc"
)

// PodResourcesSocket is the kubelet's PodResources API socket (the one DCGM
// exporter and NFD's topology updater read).
const PodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// listPodResources asks the kubelet at socket which devices each pod's
// containers hold.
func listPodResources(ctx context.Context, socket string) ([]*podresourcesapi.PodResources, error) {
	conn, err := unixgrpc.Dial(socket)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := podresourcesapi.NewPodResourcesListerClient(conn).List(ctx, &podresourcesapi.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("PodResources List at %s: %w", socket, err)
	}
	return resp.PodResources, nil
}

// devicesOf returns, per pod (namespace/name), the device IDs of resource
// its containers hold.
func devicesOf(pods []*podresourcesapi.PodResources, resource string) map[string][]string {
	held := map[string][]string{}
	for _, p := range pods {
		key := p.Namespace + "/" + p.Name
		for _, c := range p.Containers {
			for _, d := range c.Devices {
				if d.ResourceName == resource {
					held[key] = append(held[key], d.DeviceIds...)
				}
			}
		}
	}
	return held
}

// Admitting returns SharePlugin.Admitting for the kubelet's PodResources
// socket (default PodResourcesSocket): the pods the kubelet lists that
// hold no share slot.
func Admitting(socket string) func(ctx context.Context) (sets.Set[string], error) {
	if socket == "" {
		socket = PodResourcesSocket
	}
	return func(ctx context.Context) (sets.Set[string], error) {
		pods, err := listPodResources(ctx, socket)
		if err != nil {
			return nil, err
		}
		slots := devicesOf(pods, ResourceShareSlot)
		out := sets.New[string]()
		for _, p := range pods {
			if key := p.Namespace + "/" + p.Name; len(slots[key]) == 0 {
				out.Insert(key)
			}
		}
		return out, nil
	}
}
