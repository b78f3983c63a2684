// Command tessera-scheduler is the upstream kube-scheduler with Tessera's
// plugins compiled in. Every upstream flag and configuration field works
// unchanged; Tessera's plugins are enabled and configured through the
// KubeSchedulerConfiguration's profiles and pluginConfig.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	run := command.RunE
	command.RunE = func(cmd *cobra.Command, args []string) error {
		cleanup, err := kubeconfigIntoConfig(cmd.Flags())
		if err != nil {
			return err
		}
		defer cleanup()
		return run(cmd, args)
	}
	os.Exit(cli.Run(command))
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
