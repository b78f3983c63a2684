// Command tessera is Tessera's tool for people: a local playground that runs
// the real scheduler on a simulated GPU cluster, and (as it lands) trace
// replay and placement explanations.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-sched/tessera/pkg/playground"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tessera",
		Short:         "Tessera: a GPU-, topology-, quota- and gang-aware Kubernetes scheduler",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newPlaygroundCommand(), newReplayCommand(), newExplainCommand())
	return root
}

func newPlaygroundCommand() *cobra.Command {
	o := playground.Options{}
	var realNodes int
	var binDir string
	cmd := &cobra.Command{
		Use:   "playground",
		Short: "Run the scheduler on a simulated GPU cluster in this process and show where pods go",
		Long: `playground starts a real etcd, kube-apiserver and tessera-scheduler inside
this process (no cluster, no containers, nothing to download), creates a small
simulated GPU cluster (examples/playground/cluster.yaml: H100 SXM, A100 MIG and
A100 PCIe nodes), applies an example workload (whole-GPU, MIG and shared-GPU
pods, a gang, two teams with quotas), waits until every pod is placed or has a
reason to wait, prints the placements and exits.

With --keep it keeps running and writes a kubeconfig, so you can use kubectl
against the playground (create your own pods with
spec.schedulerName: tessera-scheduler) until you press Ctrl-C.

With --real-nodes N the nodes are real: N kubelets with containerd and runc on
this machine (the last of two or more without GPUs, the others with four
simulated H100s each), Tessera deployed onto them from manifests/base as pods,
and a workload whose containers run and print the GPUs they were assigned.
It needs root, containerd, runc, iptables, Debian's containernetworking-plugins
and busybox-static, and kube-apiserver, kube-controller-manager, kube-proxy and
kubelet in --bin-dir: "make demo-real" installs and builds all of them. When it
stops, no process, mount, network namespace or bridge of it is left.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Out = cmd.OutOrStdout()
			if realNodes > 0 {
				if binDir == "" {
					exe, err := os.Executable()
					if err != nil {
						return err
					}
					binDir = filepath.Dir(exe)
				}
				return playground.RunReal(ctx, playground.RealOptions{
					Out: o.Out, Nodes: realNodes, BinDir: binDir, Keep: o.Keep, Kubeconfig: o.Kubeconfig,
				})
			}
			return playground.Run(ctx, o)
		},
	}
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "keep the playground running after the report, until Ctrl-C")
	cmd.Flags().StringVar(&o.Kubeconfig, "kubeconfig", "tessera-playground.kubeconfig", "where --keep writes the kubeconfig")
	cmd.Flags().StringVar(&o.Workload, "workload", "", "YAML file, or directory of YAML files, to apply instead of the built-in example workload")
	cmd.Flags().StringVar(&o.Cluster, "cluster", "", "YAML file, or directory, of Nodes (and NodeGPUTopologies) to create instead of the built-in example cluster")
	cmd.Flags().BoolVar(&o.NoScheduler, "no-scheduler", false, "run without Tessera's scheduler, for a build or configuration of your own beside it (implies --keep)")
	cmd.Flags().StringVar(&o.DataDir, "data-dir", "", "keep etcd's data in this folder; run again with the same folder to continue with every object of the last run")
	cmd.Flags().DurationVar(&o.SettleTimeout, "timeout", 90*time.Second, "how long to wait for pods to be placed")
	cmd.Flags().StringVar(&o.GPUMap, "gpu-map", "tessera-playground-gpus.svg", "write the GPU map (an SVG of every node's GPUs: whole, MIG slices, shares) here at the end; \"\" for none")
	cmd.Flags().IntVar(&realNodes, "real-nodes", 0, "run on this many real nodes (kubelets with containerd and runc, as root) instead of simulated ones")
	cmd.Flags().StringVar(&binDir, "bin-dir", "", "with --real-nodes: where kube-apiserver, kube-controller-manager, kube-proxy, kubelet, tessera-scheduler and tessera-pause are (default: the directory of this program)")
	return cmd
}
