package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/component-base/configz"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"sigs.k8s.io/yaml"

	"github.com/tessera-sched/tessera/pkg/plugins"
)

// Scheduler is a tessera-scheduler running in this process: the upstream
// kube-scheduler app with Tessera's plugin registry, started exactly as the
// binary starts it, minus its HTTPS serving port.
type Scheduler struct {
	cancel context.CancelFunc
	done   chan error
}

// StartScheduler starts tessera-scheduler with the given
// KubeSchedulerConfiguration (YAML, as in manifests/) against the API server
// of kubeconfig. The config's clientConnection.kubeconfig is set to
// kubeconfig and leader election is turned off; everything else is used as
// written, so tests exercise the configurations we ship. The returned error is start-up's (e.g. invalid
// plugin args).
func StartScheduler(ctx context.Context, kubeconfig string, config []byte, dir string) (*Scheduler, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(config, &cfg); err != nil {
		return nil, fmt.Errorf("parsing scheduler configuration: %w", err)
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	cc, _ := cfg["clientConnection"].(map[string]any)
	if cc == nil {
		cc = map[string]any{}
	}
	cc["kubeconfig"] = kubeconfig
	cc["qps"], cc["burst"] = 500, 1000
	cfg["clientConnection"] = cc
	// Leader election stays off in-process: upstream's elector calls
	// os.Exit when a leading scheduler is stopped, which would end the
	// whole test or playground process.
	le, _ := cfg["leaderElection"].(map[string]any)
	if le == nil {
		le = map[string]any{}
	}
	le["leaderElect"] = false
	cfg["leaderElection"] = le
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fmt.Sprintf("scheduler-config-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return nil, err
	}

	opts := options.NewOptions()
	opts.ConfigFile = path
	// No HTTPS endpoint: several schedulers may share this process and port.
	opts.SecureServing.BindPort = 0
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	completed, sched, err := app.Setup(ctx, opts, plugins.SchedulerOptions()...)
	if err != nil {
		cancel()
		configz.Delete("componentconfig")
		return nil, err
	}
	s := &Scheduler{cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- app.Run(ctx, completed, sched)
	}()
	return s, nil
}

// Stop stops the scheduler and waits for it to exit, so that another can be
// started in the same process (a restart).
func (s *Scheduler) Stop() {
	if s == nil || s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
	}
	s.cancel = nil
	// app.Run registers the "componentconfig" configz section, which can only
	// be registered once per process at a time.
	configz.Delete("componentconfig")
}
