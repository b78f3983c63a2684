// Command tessera-agent runs on every GPU node (as a DaemonSet) and
// publishes the node's GPU topology, read through NVML, as the node's
// NodeGPUTopology, from which Tessera's GPUPlacement scheduler plugin learns
// NVLink domains, PCIe switches, NUMA nodes and MIG layouts.
package main

import (
	"context"
	goflag "flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/agent/simulated"
)

func main() {
	cmd := newCommand(defaultDeps())
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

// deps are what the command reaches outside the process through; tests
// replace them with NVML mocks and a fake API server client.
type deps struct {
	// newNVML returns the NVML library, not yet initialised.
	newNVML func(path string) nvml.Interface
	// newClient returns a client for the API server.
	newClient func(kubeconfig string) (dynamic.Interface, error)
	// newKubeClient returns a typed client, for the device plugin's pods
	// and Events.
	newKubeClient func(kubeconfig string) (kubernetes.Interface, error)
	// hostname names the node for --print when no node name is given.
	hostname func() (string, error)
	// now is the time --print records as status.lastChecked.
	now func() time.Time
}

func defaultDeps() deps {
	return deps{
		newNVML: func(path string) nvml.Interface {
			if path == "" {
				return nvml.New()
			}
			return nvml.New(nvml.WithLibraryPath(path))
		},
		newClient:     newDynamicClient,
		newKubeClient: newKubeClient,
		hostname:      os.Hostname,
		now:           time.Now,
	}
}

// newDynamicClient connects with the given kubeconfig, or in-cluster.
func newDynamicClient(kubeconfig string) (dynamic.Interface, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return dynamic.NewForConfig(cfg)
}

// newKubeClient is newDynamicClient's typed twin.
func newKubeClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("API server configuration: %w", err)
	}
	cfg.UserAgent = "tessera-agent/" + version.Get().GitVersion
	return cfg, nil
}

const longHelp = `tessera-agent discovers this node's NVIDIA GPUs through NVML and publishes
them as the cluster-scoped NodeGPUTopology (tessera.dev/v1alpha1) named after
the node. Tessera's GPUPlacement scheduler plugin reads it to keep multi-GPU
pods inside one NVLink domain, PCIe switch or NUMA node and to place MIG
instances on their real slots; without it the scheduler guesses the wiring
from GPU Feature Discovery labels.

For every GPU it publishes: index, UUID, product (in GPU Feature Discovery's
spelling, e.g. NVIDIA-H100-80GB-HBM3, or the scheduler catalog's when it
knows the product), memory, PCI bus ID, NUMA node, NVLink domain (the fabric
clique the driver reports, else the GPUs reachable over NVLink peer-to-peer,
"nvlink-<lowest index>"), PCIe switch ("pcie-<lowest index>" for GPUs under
one switch), and MIG mode and instances (profile and placement start).
Anything NVML cannot tell on this GPU or driver is left out.

With --device-plugin the agent is also the kubelet's device plugin (in place
of NVIDIA's, which must then not run on the node) for nvidia.com/gpu (device
IDs are GPU UUIDs), for GPU shares (tessera.dev/gpu-share-slot, which the
admission policy of manifests/agent-device-plugin adds to pods annotated
tessera.dev/gpu-milli) and for MIG instances (nvidia.com/mig-<profile>).
Each pod gets exactly the devices the scheduler wrote in its
tessera.dev/gpu-assignment annotation, through NVIDIA_VISIBLE_DEVICES; a
container the kubelet gave other devices fails admission with the reason
(and an Event) rather than running on them. Pods of other schedulers get
GPUs no Tessera pod of the node is waiting for.

MIG GPUs are published as Static by default: the scheduler hands out the
existing instances. --mig-layout=dynamic publishes them as Dynamic: the
scheduler chooses slots for new instances, and with --device-plugin the
agent creates each instance (GPU and compute instance, through NVML) when
the kubelet admits its pod and destroys instances no pod has held for 10
seconds; it then owns those GPUs' layout (no MIG Manager on them). Without
--device-plugin an external MIG manager must create what the scheduler
chose.

--simulate replaces NVML with NVIDIA's mock of a DGX system, for
playgrounds and tests on machines without GPUs; --simulate-mig enables MIG
on some of its GPUs.

Publishing (the default): the agent creates the object, updates it only when
the discovered topology or the driver version changes, refreshes
status.lastChecked at most every 10 minutes, and re-checks every --interval.
If discovery fails or finds no GPUs while a published object lists GPUs, the
object is kept and the failure logged, so that a driver restart never makes
the scheduler forget the node's GPUs; an empty topology is never published.

--print output (stable; safe to diff and to 'kubectl apply -f'): comment
lines starting with "# " that give the agent, driver, NVML and CUDA versions,
then one YAML document, the NodeGPUTopology exactly as it would be published
(apiVersion, kind, metadata.name = node name, spec.gpus[], status), with
mapping keys in alphabetical order and fields NVML could not tell omitted.
--print exits non-zero if NVML cannot be loaded, finds no GPUs, or the
scheduler would reject the topology (the YAML is printed first in that case).

If libnvidia-ml.so cannot be loaded or the driver is not running, the agent
says so and exits non-zero (the DaemonSet restarts it), or with
--wait-for-driver retries with backoff. In a container the NVIDIA runtime
injects the driver libraries when the container starts, so a driver that
appears later is only seen after a restart.`

// newCommand builds the tessera-agent command.
func newCommand(d deps) *cobra.Command {
	o := newOptions()
	cmd := &cobra.Command{
		Use:           "tessera-agent",
		Short:         "Publish this node's GPU topology (NVLink, PCIe, NUMA, MIG) for Tessera's scheduler, and hand pods their assigned GPUs",
		Long:          longHelp,
		Version:       version.Get().GitVersion,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.print {
				return runPrint(ctx, o, d, cmd.OutOrStdout())
			}
			return runPublish(ctx, o, d)
		},
	}
	o.addFlags(cmd.Flags())
	// Of klog's flags only the verbosity ones: the agent logs to stderr, as
	// Kubernetes components do.
	klogFlags := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(klogFlags)
	for _, name := range []string{"v", "vmodule"} {
		cmd.Flags().AddGoFlag(klogFlags.Lookup(name))
	}
	return cmd
}

// openNVML loads and initialises NVML (waiting for the driver with
// --wait-for-driver); the caller shuts it down.
func openNVML(ctx context.Context, o *options, d deps) (nvml.Interface, error) {
	lib := d.newNVML(o.nvmlLibrary)
	if o.simulate != "" {
		var err error
		if lib, err = simulated.New(o.simulate, o.nodeName, o.simulateMIG); err != nil {
			return nil, fmt.Errorf("--simulate: %w", err)
		}
		klog.FromContext(ctx).Info("Using simulated GPUs, not NVML", "system", o.simulate, "migGPUs", o.simulateMIG)
	}
	if err := initNVML(ctx, klog.FromContext(ctx), lib, o.waitForDriver); err != nil {
		return nil, err
	}
	return lib, nil
}

// shutdownNVML releases NVML, logging rather than failing: the work is done.
func shutdownNVML(ctx context.Context, lib nvml.Interface) {
	if ret := lib.Shutdown(); ret != nvml.SUCCESS {
		klog.FromContext(ctx).V(2).Info("NVML shutdown failed", "err", ret)
	}
}
