//go:build e2e

// Package e2e deploys Tessera from its own manifests onto a local cluster of
// real nodes (pkg/realcluster: real kubelets, containerd and runc) and checks
// what only real nodes show: the scheduler runs as pods, its two replicas
// elect a leader and fail over, and the pods it binds actually run.
//
// Run it with `make e2e` (root; installs containerd, runc, iptables, CNI
// plugins and busybox-static from Debian if missing, and builds the kubelet
// and the control-plane binaries from k8s.io/kubernetes).
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tessera-sched/tessera/pkg/realcluster"
)

// cluster is shared by the tests, which run in order: each stage stands on
// the previous one (deployed, then scheduling, then failover, then the
// default-scheduler manifests).
var cluster *realcluster.Cluster

const (
	nodeA   = "e2e-node-a"
	nodeB   = "e2e-node-b"
	gpuNode = "e2e-gpu-node"

	schedulerImage = "tessera.local/tessera-scheduler:dev"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin := os.Getenv("TESSERA_E2E_BIN")
	if bin == "" {
		bin = "../../bin"
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "tessera-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cluster, err = realcluster.Start(ctx, realcluster.Options{
		Dir:    dir,
		BinDir: bin,
		Nodes: []realcluster.NodeOptions{
			{Name: nodeA},
			{Name: nodeB},
			{
				// Simulated GPUs: the label GPU Feature Discovery puts on
				// a GPU node (tessera-agent's DaemonSet selects it); the
				// agent, started with --simulate, publishes the topology
				// and serves nvidia.com/gpu as the device plugin.
				Name:   gpuNode,
				Labels: map[string]string{"nvidia.com/gpu.present": "true"},
			},
		},
		Images: []realcluster.Image{{
			Ref:        schedulerImage,
			Files:      map[string]string{"/usr/local/bin/tessera-scheduler": filepath.Join(bin, "tessera-scheduler")},
			Entrypoint: []string{"/usr/local/bin/tessera-scheduler"},
			User:       "65532:65532",
		}, {
			Ref:        realcluster.AgentImage,
			Files:      map[string]string{"/usr/local/bin/tessera-agent": filepath.Join(bin, "tessera-agent")},
			Entrypoint: []string{"/usr/local/bin/tessera-agent"},
			User:       "65532:65532",
		}},
		Progress: os.Stderr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the real cluster: %v\n(logs in %s)\n", err, filepath.Join(dir, "logs"))
		return 1
	}
	fmt.Fprintf(os.Stderr, "cluster of %d real nodes up in %.1fs\n", len(cluster.NodeNames()), time.Since(start).Seconds())
	code := m.Run()

	start = time.Now()
	stopErr := cluster.Stop()
	left := cluster.Leftovers()
	fmt.Fprintf(os.Stderr, "cluster stopped in %.1fs\n", time.Since(start).Seconds())
	if stopErr != nil {
		fmt.Fprintf(os.Stderr, "FAIL: unclean shutdown: %v\n", stopErr)
		code = 1
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: left on the host after Stop:\n  %s\n", joinLines(left))
		code = 1
	}
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "component logs kept in %s\n", filepath.Join(dir, "logs"))
	}
	return code
}

func joinLines(lines []string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}
