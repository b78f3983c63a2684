// Command tessera is Tessera's tool for people: a local playground that runs
// the real scheduler on a simulated GPU cluster, and (as it lands) trace
// replay and placement explanations.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
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
	root.AddCommand(newPlaygroundCommand(), newReplayCommand())
	return root
}

func newPlaygroundCommand() *cobra.Command {
	o := playground.Options{}
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
spec.schedulerName: tessera-scheduler) until you press Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Out = cmd.OutOrStdout()
			return playground.Run(ctx, o)
		},
	}
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "keep the playground running after the report, until Ctrl-C")
	cmd.Flags().StringVar(&o.Kubeconfig, "kubeconfig", "tessera-playground.kubeconfig", "where --keep writes the kubeconfig")
	cmd.Flags().StringVar(&o.Workload, "workload", "", "directory of YAML files to apply instead of the built-in example workload")
	cmd.Flags().DurationVar(&o.SettleTimeout, "timeout", 90*time.Second, "how long to wait for pods to be placed")
	return cmd
}
