// Command tessera-scheduler is the upstream kube-scheduler with Tessera's
// plugins compiled in. Every upstream flag and configuration field works
// unchanged; Tessera's plugins are enabled and configured through the
// KubeSchedulerConfiguration's profiles and pluginConfig.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/tessera-sched/tessera/pkg/plugins"
)

func main() {
	command := app.NewSchedulerCommand(plugins.SchedulerOptions()...)
	command.Use = "tessera-scheduler"
	os.Exit(cli.Run(command))
}
