//go:build e2e

package playground

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRunReal runs `tessera playground --real-nodes 3` as a person would
// and checks its report: every pod ran to completion with exit code 0 on a
// real node, each GPU pod's container saw exactly the GPUs it was assigned,
// the two-member gang shares one node, the eight-GPU pod got a whole node,
// and nothing was left behind. Needs `make e2e-bin` (the
// TESSERA_E2E_BIN directory) and root; `make e2e` runs it.
func TestRunReal(t *testing.T) {
	bin := os.Getenv("TESSERA_E2E_BIN")
	if bin == "" {
		bin = "../../bin"
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := RunReal(context.Background(), RealOptions{Out: &out, Nodes: 3, BinDir: bin}); err != nil {
		t.Fatalf("playground failed: %v\n%s", err, out.String())
	}
	report := out.String()
	t.Log("\n" + report)
	row := map[string][]string{}
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && (strings.HasPrefix(f[0], "finetune-") || f[0] == "train-8gpu" || f[0] == "cpu-only") {
			row[f[0]] = f
		}
	}
	if len(row) != 4 {
		t.Fatalf("report has %d pod rows, want 4", len(row))
	}
	if f := row["cpu-only"]; f[len(f)-1] != "0" {
		t.Errorf("cpu-only did not exit 0: %q", strings.Join(f, " "))
	}
	for _, name := range []string{"finetune-0", "finetune-1", "train-8gpu"} {
		// POD NODE GPUs <assigned> GPUs <seen> EXIT
		f := row[name]
		if len(f) != 7 || f[2] != "GPUs" || f[4] != "GPUs" || f[3] != f[5] || f[6] != "0" {
			t.Errorf("pod %s: %q; want its container to see exactly its assigned GPUs and exit 0", name, strings.Join(f, " "))
		}
	}
	if row["finetune-0"][1] != row["finetune-1"][1] {
		t.Errorf("gang members on different nodes: %s and %s", row["finetune-0"][1], row["finetune-1"][1])
	}
	if !regexp.MustCompile(`^real-gpu-`).MatchString(row["train-8gpu"][1]) || row["train-8gpu"][3] != "0,1,2,3,4,5,6,7" {
		t.Errorf("train-8gpu: %q, want all eight GPUs of a GPU node", strings.Join(row["train-8gpu"], " "))
	}
	if !strings.Contains(report, "Stopped: no process, mount, network namespace or bridge of the playground is left.") {
		t.Error("the playground did not report a clean stop")
	}
}
