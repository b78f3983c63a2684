package integration

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// TestSchedulerStopLeavesNoGoroutine starts the scheduler in-process with
// the shipped profile, has it place GPU pods, a gang and a quota-checked
// pod, stops it, and checks that no goroutine running Tessera's plugin code
// is left: the plugins' informers, tickers and timers end with the
// scheduler, so a restarted scheduler does not run two sets of them.
func TestSchedulerStopLeavesNoGoroutine(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "leak-node", cpu: "64", memory: "512Gi", gpus: 8, labels: h100Labels})
	ns := newNamespace(t)
	s := startScheduler(t, cp.Config, schedulerConfig(t))
	createPod(t, ns, podSpec{name: "whole", schedulerName: "tessera-scheduler", gpus: 2})
	createPod(t, ns, podSpec{name: "share", schedulerName: "tessera-scheduler", annotations: map[string]string{"tessera.dev/gpu-milli": "250"}})
	createPodGroup(t, ns, "pair", 2, 30, nil)
	createMember(t, ns, "pair", "pair-0", 1)
	createMember(t, ns, "pair", "pair-1", 1)
	for _, p := range []string{"whole", "share", "pair-0", "pair-1"} {
		waitBound(t, ns, p, 60*time.Second)
	}
	s.Stop()

	var left []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
		left = tesseraGoroutines()
		return len(left) == 0, nil
	})
	if err != nil {
		t.Errorf("%d goroutines of Tessera's plugins still run 15s after the scheduler stopped:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// tesseraGoroutines returns the stacks of the goroutines running code of
// Tessera's plugins (not this test's).
func tesseraGoroutines() []string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		if strings.Contains(s, "tessera-sched/tessera/pkg/plugins") && !strings.Contains(s, "tesseraGoroutines") {
			out = append(out, s)
		}
	}
	return out
}
