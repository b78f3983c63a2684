// Package perf benchmarks Tessera with upstream's scheduler_perf harness:
// the real kube-apiserver and etcd, nodes and pods as API objects, and the
// scheduler built from upstream's framework plus pkg/plugins.Registry().
// Every workload runs under a baseline profile (upstream's defaults) and
// the Tessera profile in the same invocation; see config/ and
// docs/benchmarks.md. Run it with `make bench`; `make test` runs the
// workloads labelled smoke, a few nodes and pods each, so the configs never
// rot.
package perf

import (
	"os"
	"testing"

	_ "k8s.io/component-base/logs/json/register"
	perf "k8s.io/kubernetes/test/integration/scheduler_perf"

	"github.com/tessera-sched/tessera/pkg/plugins"
)

func TestMain(m *testing.M) {
	if err := perf.InitTests(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// BenchmarkPerfScheduling runs config/performance-config.yaml, filtered by
// -perf-scheduling-label-filter (performance by default; smoke in make
// test), and writes the data items to -data-items-dir.
func BenchmarkPerfScheduling(b *testing.B) {
	perf.RunBenchmarkPerfScheduling(b, "config/performance-config.yaml", "tessera", plugins.Registry(),
		perf.WithPrepareFn(prepare))
}
