package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/explain"
)

// explainFlags are the flags every explain subcommand shares.
type explainFlags struct {
	kubeconfig, context, namespace, config, output string
}

func newExplainCommand() *cobra.Command {
	f := &explainFlags{}
	cmd := &cobra.Command{
		Use:   "explain",
		Short: "Say why a pod waits or why it is where it is, from the API server alone",
		Long: `explain answers "why is my pod pending?" and "why is it on that node?".

It runs the scheduler's own checks now, against the cluster as it is: the
real framework of a Tessera profile with the real plugins, every node's
Filter (the first plugin that refuses a node, and why), the feasible nodes'
scores, each node's free GPUs, MIG slots and shares as GPUPlacement sees
them, the namespace's quota arithmetic (min, max, used, borrowed, what this
pod counts and whether it is admitted), the pod group's members and state,
the device assignment, and the pod's Events.

It only reads: every request but a read is refused before it leaves this
process. The profiles are the shipped ones (tessera-scheduler and
default-scheduler) unless --config names the cluster's own
KubeSchedulerConfiguration. Where the running scheduler's memory matters
(pods reserved at Permit, who holds the gang assembly slot), the pods'
conditions say it and explain shows them.`,
		Example: `  tessera explain cluster --svg gpus.svg
  tessera explain pod train-4gpu -n team-a
  tessera explain pod train-4gpu -n team-a -o json
  tessera explain podgroup finetune -n team-b
  tessera explain quota -n research`,
	}
	cmd.PersistentFlags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	cmd.PersistentFlags().StringVar(&f.context, "context", "", "kubeconfig context (default: the current one)")
	cmd.PersistentFlags().StringVarP(&f.namespace, "namespace", "n", "", "namespace (default: the context's)")
	cmd.PersistentFlags().StringVar(&f.config, "config", "", "the cluster's KubeSchedulerConfiguration file (default: the shipped profiles)")
	cmd.PersistentFlags().StringVarP(&f.output, "output", "o", "text", "text or json")
	var svg string
	clusterCmd := &cobra.Command{
		Use:   "cluster",
		Short: "Every node's GPUs and what holds them; --svg draws the GPU map",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, o explain.Options, _ string) (report, error) {
				r, err := explain.Cluster(ctx, o)
				if err != nil || svg == "" {
					return r, err
				}
				return r, writeGPUMap(cmd.ErrOrStderr(), svg, r)
			})
		},
	}
	clusterCmd.Flags().StringVar(&svg, "svg", "", "also draw the GPU map (nodes x GPUs: whole, MIG slices, shares) into this SVG file, for a browser")
	cmd.AddCommand(clusterCmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "pod NAME",
		Short: "Why the pod waits, or why it is on its node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, o explain.Options, ns string) (report, error) {
				return explain.Pod(ctx, o, ns, args[0])
			})
		},
	}, &cobra.Command{
		Use:   "podgroup NAME",
		Short: "A pod group's state and every member's",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, o explain.Options, ns string) (report, error) {
				return explain.PodGroup(ctx, o, ns, args[0])
			})
		},
	}, &cobra.Command{
		Use:   "quota",
		Short: "A namespace's quota: min, max, use, borrowing and what each pod counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, o explain.Options, ns string) (report, error) {
				return explain.Quota(ctx, o, ns)
			})
		},
	})
	return cmd
}

// report is what every explain answer can do.
type report interface{ WriteText(io.Writer) }

func (f *explainFlags) run(cmd *cobra.Command, explainFn func(context.Context, explain.Options, string) (report, error)) error {
	if f.output != "text" && f.output != "json" {
		return fmt.Errorf("--output %q: use text or json", f.output)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	ns := f.namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil {
			return err
		}
	}
	// The plugins' informers log at info level; a person wants the report.
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := explainFn(ctx, explain.Options{Config: cfg, SchedulerConfig: f.config}, ns)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	r.WriteText(out)
	return nil
}

// writeGPUMap draws r's GPU map into path and says where it is.
func writeGPUMap(log io.Writer, path string, r *explain.ClusterReport) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.WriteSVG(f, "GPUs at "+time.Now().UTC().Format(time.RFC3339)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(log, "GPU map: %s (open it in a browser; hover a GPU for its pods)\n", path)
	return nil
}
