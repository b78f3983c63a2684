package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tessera-sched/tessera/pkg/agent"
	"github.com/tessera-sched/tessera/pkg/agent/deviceplugin"
	"github.com/tessera-sched/tessera/pkg/agent/simulated"
)

// options are tessera-agent's flags.
type options struct {
	print         bool
	once          bool
	nodeName      string
	kubeconfig    string
	interval      time.Duration
	migLayout     string
	waitForDriver bool
	hostRoot      string
	nvmlLibrary   string
	simulate      string
	simulateMIG   []int
	devicePlugin  bool
	// devicePluginDir is the kubelet's device-plugin directory.
	devicePluginDir string
	// podResourcesSocket is the kubelet's PodResources socket.
	podResourcesSocket string
	// metricsAddr serves /metrics and /healthz.
	metricsAddr string
	// deviceListStrategy is how containers get their devices.
	deviceListStrategy string
}

// defaultInterval is how often the agent re-discovers the GPUs. A minute
// notices MIG reconfigurations and GPUs falling off the bus soon enough for
// scheduling, at one NVML sweep (milliseconds) and one GET per node.
const defaultInterval = 60 * time.Second

func newOptions() *options {
	return &options{
		nodeName:  os.Getenv("NODE_NAME"),
		interval:  defaultInterval,
		migLayout: string(agent.MIGLayoutStatic),
		hostRoot:  "/",
	}
}

func (o *options) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.print, "print", false, "discover the GPUs, print the NodeGPUTopology as YAML on stdout and exit, without contacting the cluster")
	fs.BoolVar(&o.once, "once", false, "publish once and exit (non-zero if publishing failed) instead of re-checking every --interval")
	fs.StringVar(&o.nodeName, "node-name", o.nodeName, "name of this node, and so of its NodeGPUTopology (default: $NODE_NAME, set from spec.nodeName by the DaemonSet; with --print, the host name)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file to reach the API server (default: the in-cluster service account)")
	fs.DurationVar(&o.interval, "interval", o.interval, "how often to re-discover the GPUs and update the NodeGPUTopology if it changed")
	fs.StringVar(&o.migLayout, "mig-layout", o.migLayout, `MIG mode to publish for MIG-enabled GPUs: "static" (the scheduler hands out existing instances only) or "dynamic" (the scheduler may choose slots for new instances; with --device-plugin the agent creates them as pods are admitted and destroys those no pod holds, without it an external MIG manager must)`)
	fs.BoolVar(&o.waitForDriver, "wait-for-driver", false, "if NVML cannot be loaded (no driver yet), keep retrying with backoff instead of exiting")
	fs.StringVar(&o.hostRoot, "host-root", o.hostRoot, "root of the host file system, under which sys/bus/pci/devices/<bus id>/numa_node is read when NVML cannot tell a GPU's NUMA node")
	fs.StringVar(&o.nvmlLibrary, "nvml-library", "", "path of libnvidia-ml.so.1 (default: the dynamic linker's search path)")
	fs.BoolVar(&o.devicePlugin, "device-plugin", false, "also serve nvidia.com/gpu to the kubelet as a device plugin (in place of NVIDIA's, which must not run on the node) that hands each pod exactly the GPUs in its tessera.dev/gpu-assignment and fails the admission of a container the kubelet gave other GPUs, and serve GPU shares as tessera.dev/gpu-share-slot (the admission policy in manifests/agent-device-plugin adds a slot to every pod annotated tessera.dev/gpu-milli) handing a share pod the GPU its share was assigned; needs the kubelet's device-plugin directory (--device-plugin-dir)")
	fs.StringVar(&o.devicePluginDir, "device-plugin-dir", "/var/lib/kubelet/device-plugins", "the kubelet's device-plugin directory, where kubelet.sock is")
	fs.StringVar(&o.podResourcesSocket, "pod-resources-socket", deviceplugin.PodResourcesSocket, "with --device-plugin: the kubelet's PodResources socket, read to record (as the pod annotation tessera.dev/gpu-realized) the GPUs pods of other schedulers, or pods the kubelet gave other GPUs, really hold, and to tell which pod the kubelet is admitting when it asks for a share slot")
	fs.StringVar(&o.simulate, "simulate", "", "use simulated GPUs instead of NVML, for playgrounds and tests on machines without GPUs: one of "+strings.Join(simulated.Systems(), ", ")+" (NVIDIA's NVML mocks, eight GPUs on one NVLink fabric and two NUMA nodes, UUIDs derived from the node name); never use on a GPU node")
	fs.StringVar(&o.deviceListStrategy, "device-list-strategy", "envvar", `with --device-plugin, how a container gets its devices: "envvar" (NVIDIA_VISIBLE_DEVICES=<UUIDs>, read by the NVIDIA container runtime) or "cdi-cri" (CDI device names nvidia.com/gpu=<GPU or MIG UUID>, for a container runtime with CDI enabled and NVIDIA's CDI spec generated with nvidia-ctk cdi generate --device-name-strategy=uuid; robust to an image's own NVIDIA_VISIBLE_DEVICES)`)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":9401", `address (host:port) where the agent serves Prometheus metrics on /metrics (with --device-plugin: tessera_device_allocations_total, tessera_device_assignment_mismatch_total, tessera_mig_instance_operations_total) and /healthz; "0" serves nothing`)
	fs.IntSliceVar(&o.simulateMIG, "simulate-mig", nil, "with --simulate, these GPUs (indices, e.g. 6,7) have MIG enabled and no MIG instances; with --mig-layout=dynamic the scheduler places MIG pods on them and the agent's device plugin creates the instances (an error without --simulate)")
}

// validate checks the flags that do not depend on the environment.
func (o *options) validate() (agent.MIGLayout, error) {
	layout, err := agent.ParseMIGLayout(o.migLayout)
	if err != nil {
		return "", fmt.Errorf("--mig-layout: %w", err)
	}
	if o.interval <= 0 {
		return "", fmt.Errorf("--interval must be positive, got %v", o.interval)
	}
	if o.deviceListStrategy != "envvar" && o.deviceListStrategy != "cdi-cri" {
		return "", fmt.Errorf("--device-list-strategy: invalid value %q (want \"envvar\" or \"cdi-cri\")", o.deviceListStrategy)
	}
	if len(o.simulateMIG) > 0 && o.simulate == "" {
		return "", errors.New("--simulate-mig needs --simulate: it enables MIG on simulated GPUs only")
	}
	if o.print && o.once {
		return "", errors.New("--print and --once exclude each other: --print never publishes")
	}
	if !o.print && o.nodeName == "" {
		return "", errors.New("no node name: set --node-name or the NODE_NAME environment variable (the DaemonSet sets it from spec.nodeName)")
	}
	return layout, nil
}
