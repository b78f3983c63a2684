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
// real node, each GPU pod's container saw exactly the GPUs it was assigned
// (the share pods their share's GPU, the MIG pod a MIG device), the
// two-member gang shares one node, the two shares one GPU, and nothing was
// left behind. Needs `make e2e-bin` (the
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
	// POD NODE ASSIGNED CONTAINER-SAW EXIT, columns two spaces apart.
	row := map[string][]string{}
	for _, line := range strings.Split(report, "\n") {
		f := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
		if len(f) == 5 && f[0] != "POD" {
			row[f[0]] = f
		}
	}
	if len(row) != 7 {
		t.Fatalf("report has %d pod rows, want 7", len(row))
	}
	for name, f := range row {
		if f[4] != "0" {
			t.Errorf("pod %s did not exit 0: %q", name, strings.Join(f, " | "))
		}
	}
	for _, name := range []string{"finetune-0", "finetune-1", "train-4gpu"} {
		if f := row[name]; !strings.HasPrefix(f[2], "GPUs ") || f[2] != f[3] {
			t.Errorf("pod %s: %q; want its container to see exactly its assigned GPUs", name, strings.Join(f, " | "))
		}
	}
	for _, name := range []string{"notebook-a", "notebook-b"} {
		f := row[name]
		m := regexp.MustCompile(`^\d+m of (GPU \d+)$`).FindStringSubmatch(f[2])
		if m == nil || f[3] != m[1] {
			t.Errorf("share pod %s: %q; want its container to see the GPU of its share", name, strings.Join(f, " | "))
		}
	}
	if row["notebook-a"][1] != row["notebook-b"][1] || row["notebook-a"][3] != row["notebook-b"][3] {
		t.Errorf("the two shares are not packed onto one GPU: %q and %q", strings.Join(row["notebook-a"], " | "), strings.Join(row["notebook-b"], " | "))
	}
	if f := row["infer-mig"]; !strings.HasPrefix(f[2], "MIG 3g.40gb on GPU 7") || !strings.HasPrefix(f[3], "MIG device MIG-") {
		t.Errorf("infer-mig: %q; want a 3g.40gb slot on GPU 7 and its container to see a MIG device", strings.Join(f, " | "))
	}
	if row["finetune-0"][1] != row["finetune-1"][1] {
		t.Errorf("gang members on different nodes: %s and %s", row["finetune-0"][1], row["finetune-1"][1])
	}
	if !strings.Contains(report, "Stopped: no process, mount, network namespace or bridge of the playground is left.") {
		t.Error("the playground did not report a clean stop")
	}
}
