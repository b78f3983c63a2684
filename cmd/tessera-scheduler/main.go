// Command tessera-scheduler is the upstream kube-scheduler with Tessera's
// plugins compiled in. Every upstream flag and configuration field works
// unchanged; Tessera's plugins are enabled and configured through the
// KubeSchedulerConfiguration's profiles and pluginConfig.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"sigs.k8s.io/yaml"

	"github.com/tessera-sched/tessera/pkg/plugins"
)

func main() {
	command := app.NewSchedulerCommand(plugins.SchedulerOptions()...)
	command.Use = "tessera-scheduler"
	command.Short = "Tessera: the Kubernetes scheduler with GPU-, quota- and gang-aware plugins"
	command.Long = tesseraHelp + "\n\n" + command.Long
	run := command.RunE
	command.RunE = func(cmd *cobra.Command, args []string) error {
		if err := quietMetricsAllowList(cmd.Flags()); err != nil {
			return err
		}
		cleanup, err := kubeconfigIntoConfig(cmd.Flags())
		if err != nil {
			return err
		}
		defer cleanup()
		if err := checkLeaderElection(cmd.Context(), cmd.Flags()); err != nil {
			return err
		}
		return run(cmd, args)
	}
	os.Exit(cli.Run(command))
}

// tesseraHelp comes before upstream's own text in --help: what Tessera
// adds, where it is configured and where to read on.
const tesseraHelp = `tessera-scheduler is the upstream kube-scheduler (Kubernetes v1.37) with
Tessera's plugins compiled in. Every upstream flag below works unchanged;
Tessera's plugins are enabled and configured in the
KubeSchedulerConfiguration file given with --config (profiles[].plugins
and pluginConfig[].args):

  GPUPlacement  chooses the node and the exact GPUs, MIG slot or GPU share
                (pod annotation tessera.dev/gpu-milli) of each GPU pod, keeps
                multi-GPU pods in one NVLink domain or NUMA node, scores
                nodes against fragmentation, and writes the choice to the pod
                (tessera.dev/gpu-assignment).
                args: scoringStrategy, topologyWeight (0-100), demandHalfLife
  ElasticQuota  scheduler-plugins' ElasticQuota min/max per namespace,
                borrowing of idle quota, reclaim by preempting borrowers,
                GPUs counted as GPU-equivalents (whole, MIG, shares).
                args: namespacesWithoutQuota, borrowingLimit
  Gang          scheduler-plugins' PodGroups all-or-nothing, one group
                assembling at a time, whole-group fit, quota and preemption.
                args: defaultScheduleTimeoutSeconds, backoffInitialSeconds,
                backoffMaxSeconds, starvationAfterSeconds

The shipped configurations are manifests/base/scheduler-config.yaml (a
secondary scheduler, schedulerName: tessera-scheduler) and
manifests/default-scheduler/scheduler-config.yaml (as the default
scheduler). --kubeconfig works beside --config when the file names none.
A bad plugin arg stops start-up with an error naming
pluginConfig[<Plugin>].args.<field>. Documentation: README.md of
github.com/tessera-sched/tessera.`

// quietMetricsAllowList keeps upstream's start-up from logging "The
// manifest file is empty, ignoring." at error level: component-base reads
// the metric label allow-list manifest whenever no allow-list mapping is
// set, even when no manifest was given, and says so as an error on every
// start. With neither flag given, an allow-list for a metric that does
// not exist is set instead, which changes nothing. A user's
// --allow-metric-labels or --allow-metric-labels-manifest is left as given.
func quietMetricsAllowList(fs *pflag.FlagSet) error {
	mapping, manifest := fs.Lookup("allow-metric-labels"), fs.Lookup("allow-metric-labels-manifest")
	if mapping == nil || manifest == nil || mapping.Changed || manifest.Changed {
		return nil
	}
	return fs.Set("allow-metric-labels", "tessera_no_such_metric,no_such_label=none")
}

// checkLeaderElection refuses to start a scheduler that could never take
// its lease: upstream's elector retries for ever, silently for a user,
// when the lease's namespace does not exist or RBAC denies the lease, and
// pods then get no condition and no Event. Only definite answers (the
// namespace is not found, access is denied) stop it; an API server that
// does not answer yet is left to upstream's retries.
func checkLeaderElection(ctx context.Context, fs *pflag.FlagSet) error {
	config := fs.Lookup("config")
	if config == nil || config.Value.String() == "" {
		return nil
	}
	data, err := os.ReadFile(config.Value.String())
	if err != nil {
		return nil
	}
	var cfg struct {
		ClientConnection struct {
			Kubeconfig string `json:"kubeconfig"`
		} `json:"clientConnection"`
		LeaderElection struct {
			LeaderElect       *bool  `json:"leaderElect"`
			ResourceName      string `json:"resourceName"`
			ResourceNamespace string `json:"resourceNamespace"`
		} `json:"leaderElection"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil
	}
	le := cfg.LeaderElection
	if f := fs.Lookup("leader-elect"); f != nil && f.Changed {
		on := f.Value.String() == "true"
		le.LeaderElect = &on
	}
	if le.LeaderElect != nil && !*le.LeaderElect {
		return nil
	}
	ns, name := orDefault(le.ResourceNamespace, "kube-system"), orDefault(le.ResourceName, "kube-scheduler")
	var rc *rest.Config
	if cfg.ClientConnection.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.ClientConnection.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil // upstream reports a bad kubeconfig
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return fmt.Errorf("leader election: the lease %s/%s cannot be taken because namespace %q does not exist (leaderElection.resourceNamespace in %s); create it (kubectl apply -k manifests/base does), or run without leader election (--leader-elect=false)", ns, name, ns, config.Value.String())
	}
	for _, verb := range []string{"get", "update", "create"} {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: "coordination.k8s.io", Resource: "leases", Name: name},
		}}
		if verb == "create" {
			review.Spec.ResourceAttributes.Name = ""
		}
		got, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err == nil && !got.Status.Allowed {
			return fmt.Errorf("leader election: this scheduler may not %s the lease %s/%s (RBAC: coordination.k8s.io leases, verb %s, namespace %s): %s; grant it (manifests/base/rbac.yaml's Role tessera-scheduler-leader-election does) or run without leader election (--leader-elect=false)", verb, ns, name, verb, ns, got.Status.Reason)
		}
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// kubeconfigIntoConfig makes --kubeconfig work beside --config. Upstream
// ignores --kubeconfig when --config is given (the kubeconfig belongs in
// the file's clientConnection.kubeconfig), so a scheduler started by hand
// as `tessera-scheduler --config manifests/base/scheduler-config.yaml
// --kubeconfig K` exits at once with "no configuration has been provided".
// When the file names no kubeconfig, this writes a copy of it with
// clientConnection.kubeconfig set to --kubeconfig's and points --config at
// the copy; a kubeconfig in the file wins, as upstream's precedence says.
// The returned cleanup removes the copy.
func kubeconfigIntoConfig(fs *pflag.FlagSet) (func(), error) {
	noop := func() {}
	config, kubeconfig := fs.Lookup("config"), fs.Lookup("kubeconfig")
	if config == nil || kubeconfig == nil || !config.Changed || !kubeconfig.Changed || config.Value.String() == "" {
		return noop, nil
	}
	data, err := os.ReadFile(config.Value.String())
	if err != nil {
		return noop, fmt.Errorf("--config: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil || cfg == nil {
		// Upstream reports what is wrong with the file.
		return noop, nil
	}
	cc, _ := cfg["clientConnection"].(map[string]any)
	if cc == nil {
		cc = map[string]any{}
	}
	if s, _ := cc["kubeconfig"].(string); s != "" {
		klog.Background().Info("Using the kubeconfig of --config's clientConnection.kubeconfig, not --kubeconfig", "config", config.Value.String(), "kubeconfig", s)
		return noop, nil
	}
	cc["kubeconfig"] = kubeconfig.Value.String()
	cfg["clientConnection"] = cc
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return noop, err
	}
	f, err := os.CreateTemp("", "tessera-scheduler-config-*.yaml")
	if err != nil {
		return noop, err
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		os.Remove(f.Name())
		return noop, err
	}
	f.Close()
	if err := fs.Set("config", f.Name()); err != nil {
		os.Remove(f.Name())
		return noop, err
	}
	return func() { os.Remove(f.Name()) }, nil
}
