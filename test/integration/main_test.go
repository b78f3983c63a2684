// Package integration runs Tessera against a real kube-apiserver and etcd
// (in-process, see pkg/localcluster) with the real scheduler framework and
// the real plugins, configured with the files we ship in manifests/.
package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// cp is the control plane shared by every test of the package: starting one
// takes seconds, and tests isolate themselves by namespace and node names.
var cp *localcluster.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tessera-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cp, err = localcluster.StartProgram(localcluster.Options{Dir: dir})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting control plane: %v\n", err)
		return 1
	}
	defer cp.Stop()
	return m.Run()
}
