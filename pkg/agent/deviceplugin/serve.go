package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-sched/tessera/pkg/internal/unixgrpc"
)

// endpoint is one resource's device-plugin server: the kubelet registers a
// plugin per resource, each on its own socket.
type endpoint struct {
	// dir is the kubelet's device-plugin directory (default
	// /var/lib/kubelet/device-plugins/), where kubelet.sock is.
	dir      string
	socket   string
	resource string
	devices  int
	server   pluginapi.DevicePluginServer
	logger   klog.Logger
}

// serve serves e and registers it with the kubelet until ctx ends, serving
// and registering again whenever the kubelet restarts (it removes every
// socket in its directory when it starts).
func serve(ctx context.Context, e endpoint) error {
	if e.dir == "" {
		e.dir = pluginapi.DevicePluginPath
	}
	for ctx.Err() == nil {
		err := e.serveOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		e.logger.Info("Device plugin stopped serving; starting again", "resource", e.resource, "reason", err)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
	return nil
}

// serveOnce serves until ctx ends, the kubelet restarts or the plugin's
// socket is removed.
func (e endpoint) serveOnce(ctx context.Context) error {
	socket := filepath.Join(e.dir, e.socket)
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", socket, err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, e.server)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	kubeletSocket := filepath.Join(e.dir, "kubelet.sock")
	if err := e.register(ctx, kubeletSocket); err != nil {
		return err
	}
	e.logger.Info("Registered with the kubelet", "resource", e.resource, "devices", e.devices, "socket", socket)
	kubelet, _ := os.Stat(kubeletSocket)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if _, err := os.Stat(socket); err != nil {
			return errors.New("the plugin's socket was removed (kubelet restart)")
		}
		now, err := os.Stat(kubeletSocket)
		if err != nil || kubelet == nil || !os.SameFile(now, kubelet) {
			return errors.New("the kubelet's socket changed (kubelet restart)")
		}
	}
}

func (e endpoint) register(ctx context.Context, kubeletSocket string) error {
	conn, err := unixgrpc.Dial(kubeletSocket)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     e.socket,
		ResourceName: e.resource,
		Options:      preferredOptions,
	})
	if err != nil {
		return fmt.Errorf("registering %s with the kubelet at %s: %w", e.resource, kubeletSocket, err)
	}
	return nil
}

// CDIKind is the CDI device kind of NVIDIA's container toolkit: with
// --device-list-strategy=cdi-cri the kubelet passes "nvidia.com/gpu=<uuid>"
// (a GPU or MIG device UUID, as `nvidia-ctk cdi generate
// --device-name-strategy=uuid` names them) to the container runtime, which
// injects exactly those devices, whatever the image's own
// NVIDIA_VISIBLE_DEVICES says.
const CDIKind = "nvidia.com/gpu"

// containerResponse tells the kubelet how the container gets the devices
// whose GPU or MIG UUIDs are visible: by CDI device names, or through the
// NVIDIA container runtime's NVIDIA_VISIBLE_DEVICES; env is added as is.
func containerResponse(visible []string, cdi bool, env map[string]string) *pluginapi.ContainerAllocateResponse {
	resp := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{}}
	for k, v := range env {
		resp.Envs[k] = v
	}
	if cdi {
		for _, id := range visible {
			resp.CdiDevices = append(resp.CdiDevices, &pluginapi.CDIDevice{Name: CDIKind + "=" + id})
		}
		return resp
	}
	resp.Envs["NVIDIA_VISIBLE_DEVICES"] = strings.Join(visible, ",")
	return resp
}

// poke signals ch without blocking (a nil ch is fine): one pending signal
// is enough for its reader to look again.
func poke(ch chan<- struct{}) {
	if ch == nil {
		return
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// preferredOptions says a plugin answers GetPreferredAllocation.
var preferredOptions = &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}

// sendDevices answers ListAndWatch: the devices, all healthy, once, then
// the stream stays open until the kubelet or the plugin stops.
func sendDevices(stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse], ids []string) error {
	resp := &pluginapi.ListAndWatchResponse{}
	for _, id := range ids {
		resp.Devices = append(resp.Devices, &pluginapi.Device{ID: id, Health: pluginapi.Healthy})
	}
	if err := stream.Send(resp); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}
