package playground

import (
	"bytes"
	"context"
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
	if err := Run(ctx, Options{Out: &out, SettleTimeout: 90 * time.Second}); err != nil {
		t.Fatalf("playground failed: %v\n%s", err, out.String())
	}
	report := out.String()
	t.Log("\n" + report)

	checks := []struct {
		what string
		re   string
	}{
		{"progress for the control plane", `• Starting etcd and kube-apiserver \.\.\. ok`},
		{"4-GPU training pod on a whole-GPU node", `(?m)^\s+team-a\s+train-4gpu\s+4 GPU\s+gpu-(h100-[ab]|a100-pcie)\s+.*Running$`},
		{"MIG pod on the MIG node", `(?m)^\s+team-b\s+mig-small\s+1 x MIG 1g\.10gb\s+gpu-a100-mig\s+.*Running$`},
		{"oversized pod pending", `(?m)^\s+team-a\s+too-big-16gpu\s+16 GPU\s+-\s+.*Pending$`},
		{"reason for the pending pod", `team-a/too-big-16gpu: Unschedulable: 0/4 nodes are available`},
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
}
