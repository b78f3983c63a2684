// Package plugins lists Tessera's scheduler plugins in one place, so that the
// scheduler binary, the integration tests, the trace replay and the benchmarks
// all run exactly the same set.
package plugins

import (
	"sort"

	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/tessera-sched/tessera/pkg/plugins/elasticquota"
	"github.com/tessera-sched/tessera/pkg/plugins/gang"
	"github.com/tessera-sched/tessera/pkg/plugins/gpuplacement"
)

// Registry returns a fresh registry of Tessera's out-of-tree plugins, to be
// merged with upstream's in-tree registry by the scheduler.
func Registry() frameworkruntime.Registry {
	return frameworkruntime.Registry{
		gpuplacement.Name: gpuplacement.New,
		elasticquota.Name: elasticquota.New,
		gang.Name:         gang.New,
	}
}

// SchedulerOptions returns Registry as options for
// app.NewSchedulerCommand and app.Setup, in a stable order.
func SchedulerOptions() []app.Option {
	r := Registry()
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	opts := make([]app.Option, 0, len(names))
	for _, n := range names {
		opts = append(opts, app.WithPlugin(n, r[n]))
	}
	return opts
}
