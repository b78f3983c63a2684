package playground

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPlaygroundReport runs the whole playground (real etcd, kube-apiserver
// and tessera-scheduler) and checks the report a person reads.
func TestPlaygroundReport(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	gpuMap := filepath.Join(t.TempDir(), "gpus.svg")
	if err := Run(ctx, Options{Out: &out, SettleTimeout: 90 * time.Second, GPUMap: gpuMap}); err != nil {
		t.Fatalf("playground failed: %v\n%s", err, out.String())
	}
	report := out.String()
	t.Log("\n" + report)

	// The GPU map holds every scene's devices: whole GPUs, the MIG
	// instances and the shares, each naming its pod.
	svg, err := os.ReadFile(gpuMap)
	if err != nil {
		t.Fatalf("no GPU map: %v", err)
	}
	for _, want := range []string{"gpu-h100-a", "gpu-a100-mig", "gpu-lab2", "whole: team-a/train-4gpu", "MIG 1g.10gb (slices", ": team-b/mig-small", "500m: team-b/notebook-half-gpu", "250m: team-b/notebook-quarter-gpu", "whole: training/pretrain-0"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("the GPU map lacks %q", want)
		}
	}
	if !strings.Contains(report, "GPU map: "+gpuMap) {
		t.Errorf("the report does not say where the GPU map is")
	}

	checks := []struct {
		what string
		re   string
	}{
		{"progress for the control plane", `• Starting etcd and kube-apiserver \.\.\. ok`},
		// Which four depends on what the gang took first; locality itself is
		// tested in test/integration.
		{"4-GPU training pod on four GPUs", `(?m)^\s+team-a\s+train-4gpu\s+4 GPU\s+gpu-(h100-[ab]|a100-pcie)\s+GPUs \d,\d,\d,\d\s+Running$`},
		{"MIG pod on a legal slot of the MIG node", `(?m)^\s+team-b\s+mig-small\s+1 x MIG 1g\.10gb\s+gpu-a100-mig\s+MIG 1g\.10gb on GPU \d \(start \d\)\s+Running$`},
		{"shares packed on one GPU", `(?m)^\s+team-b\s+notebook-half-gpu\s+500m of a GPU\s+(\S+)\s+500m of GPU (\d)\s+Running$`},
		{"gang waiting with its reason, nothing bound", `finetune-0 waits \(0 of its group bound\): WaitingForPodGroup: 2 of 3 pods of pod group team-b/finetune exist`},
		{"gang running once complete", `(?s)finetune-0 bound to \S+ \(GPU \d\).*finetune-1 bound to \S+.*finetune-2 bound to \S+`},
		{"GPU map", `(?m)^\s+gpu-h100-[ab]\s+NVIDIA-H100-80GB-HBM3\s+[█▒·]{4} [█▒·]{4}\s+`},
		{"oversized pod pending", `(?m)^\s+team-a\s+too-big-16gpu\s+16 GPU\s+-\s+.*Pending$`},
		// The amount depends on how many team-a pods were bound when the
		// pod was last tried; the reason must name the namespace and max.
		{"quota reason for the pending pod", `team-a/too-big-16gpu: Unschedulable: .*namespace "team-a" would use \d+ nvidia.com/gpu, above its max 16`},
		{"quota use per namespace, team-a borrowing", `(?m)^\s+team-a\s+nvidia\.com/gpu\s+12\s+8\s+16\s+4$`},
		{"quota use per namespace, team-b", `(?m)^\s+team-b\s+nvidia\.com/gpu\s+1\s+4\s+8\s+0$`},
		{"reclaim: prod's pod bound on the lab node", `(?m)^\s+serve-2gpu bound to gpu-lab \(GPUs \d,\d\)$`},
		{"reclaim: exactly two sweep pods preempted", `(?s)research/sweep-\d preempted to make room for prod/serve-2gpu: Preempted by pod .*research/sweep-\d preempted to make room for prod/serve-2gpu: `},
		{"reclaim: research keeps two", `research keeps 2 of its 4 sweep pods`},
		{"gang preemption: both workers bound on the lab node", `(?s)pretrain-0 bound to gpu-lab2 \(GPUs \d,\d\).*pretrain-1 bound to gpu-lab2 \(GPUs \d,\d\)`},
		{"gang preemption: victims name the pod group", `batch/batch-\d preempted to make room for training/pretrain: Preempted by pod group training/pretrain`},
		{"gang preemption: all four batch pods evicted", `batch keeps 0 of its 4 pods`},
		{"node table", `(?m)^\s+gpu-a100-mig\s+NVIDIA-A100-SXM4-80GB\s+`},
	}
	for _, c := range checks {
		if !regexp.MustCompile(c.re).MatchString(report) {
			t.Errorf("report lacks %s (%s)", c.what, c.re)
		}
	}
	if n := strings.Count(report, "Running\n"); n != 10 {
		t.Errorf("%d pods running, want 10 of 11", n)
	}
	half := regexp.MustCompile(`(?m)notebook-half-gpu\s+\S+ of a GPU\s+(\S+)\s+500m of GPU (\d)`).FindStringSubmatch(report)
	quarter := regexp.MustCompile(`(?m)notebook-quarter-gpu\s+\S+ of a GPU\s+(\S+)\s+250m of GPU (\d)`).FindStringSubmatch(report)
	if half == nil || quarter == nil || half[1] != quarter[1] || half[2] != quarter[2] {
		t.Errorf("the two GPU shares were not packed onto one GPU: %v / %v", half, quarter)
	}
}

// TestRemoveStale: a folder left by a playground whose process is gone
// (killed with SIGKILL, which no handler can catch) is removed by the next
// playground; one whose process lives, and other folders, are kept.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(p, "etcd"), 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := mk(fmt.Sprintf("%s%d-123", tempPrefix, dead.Process.Pid))
	live := mk(fmt.Sprintf("%s%d-456", tempPrefix, os.Getpid()))
	other := mk("tessera-playground-real-789")
	if n := removeStale(dir, tempPrefix); n != 1 {
		t.Errorf("removed %d folders, want 1", n)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the dead playground's folder is still there (%v)", err)
	}
	for _, p := range []string{live, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}
