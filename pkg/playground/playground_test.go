package playground

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tessera-sched/tessera/pkg/explain"
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

// TestPlaygroundWithoutScheduler: a cluster and workload of one's own, no
// scheduler: the playground keeps running with an owner-only kubeconfig,
// the node is there and the pod waits, unbound, for a scheduler.
func TestPlaygroundWithoutScheduler(t *testing.T) {
	var out bytes.Buffer
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Out: &syncWriter{w: &out}, Cluster: "testdata/cluster.yaml", Workload: "testdata/workload.yaml", NoScheduler: true, Kubeconfig: kubeconfig, GPUMap: ""})
	}()
	var client kubernetes.Interface
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return false, nil
		}
		client, err = kubernetes.NewForConfig(cfg)
		return err == nil, nil
	}); err != nil {
		t.Fatalf("no kubeconfig written: %v", err)
	}
	if st, err := os.Stat(kubeconfig); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	if _, err := client.CoreV1().Nodes().Get(ctx, "my-node", metav1.GetOptions{}); err != nil {
		t.Errorf("own cluster's node: %v", err)
	}
	time.Sleep(3 * time.Second)
	pod, err := client.CoreV1().Pods("default").Get(ctx, "mine", metav1.GetOptions{})
	if err != nil || pod.Spec.NodeName != "" {
		t.Errorf("own workload's pod: %v, node %q; want it unbound, no scheduler runs", err, pod.Spec.NodeName)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("playground: %v", err)
	}
	if !strings.Contains(out.String(), "No scheduler runs: the pods wait for yours") {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestPlaygroundDataDir: a playground run again on the same --data-dir
// finds the last one's objects, the bound pod still on its node.
func TestPlaygroundDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	run := func() string {
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := Run(ctx, Options{Out: &out, Cluster: "testdata/cluster.yaml", Workload: "testdata/workload.yaml", DataDir: dir, SettleTimeout: time.Minute}); err != nil {
			t.Fatalf("playground: %v\n%s", err, out.String())
		}
		return out.String()
	}
	first := run()
	if !regexp.MustCompile(`(?m)^\s+default\s+mine\s+2 GPU\s+my-node\s+GPUs \d,\d\s+`).MatchString(first) {
		t.Fatalf("first run did not place the pod:\n%s", first)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
	second := run()
	if !strings.Contains(second, "Continuing on the data in "+dir) {
		t.Errorf("second run does not say it continues:\n%s", second)
	}
	gpus := func(report string) string {
		if m := regexp.MustCompile(`mine\s+2 GPU\s+my-node\s+(GPUs \d,\d)`).FindStringSubmatch(report); m != nil {
			return m[1]
		}
		return "none"
	}
	if a, b := gpus(first), gpus(second); a != b {
		t.Errorf("the pod's GPUs changed across runs: %s then %s", a, b)
	}
}

// syncWriter lets a test read output a running playground writes.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestExplainOnPlayground runs tessera explain's reports on the
// playground's own scenes, kept running: the oversized pod refused by its
// quota before any node, a running pod with its node and assignment, the
// gang, team-a's quota, and the cluster's GPU map.
func TestExplainOnPlayground(t *testing.T) {
	var out syncWriter
	var buf bytes.Buffer
	out.w = &buf
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Out: &out, Keep: true, Kubeconfig: kubeconfig, SettleTimeout: 90 * time.Second})
	}()
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 150*time.Second, true, func(context.Context) (bool, error) {
		out.mu.Lock()
		defer out.mu.Unlock()
		return strings.Contains(buf.String(), "Press Ctrl-C to stop."), nil
	}); err != nil {
		t.Fatalf("the playground did not get to its prompt:\n%s", buf.String())
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	o := explain.Options{Config: cfg}
	text := func(r interface{ WriteText(io.Writer) }) string {
		var b bytes.Buffer
		r.WriteText(&b)
		return b.String()
	}
	big, err := explain.Pod(ctx, o, "team-a", "too-big-16gpu")
	if err != nil {
		t.Fatal(err)
	}
	if big.PreFilter == nil || big.PreFilter.Plugin != "ElasticQuota" || big.Quota == nil || !strings.HasPrefix(big.Quota.Verdict, "refused") {
		t.Errorf("too-big-16gpu:\n%s", text(big))
	}
	train, err := explain.Pod(ctx, o, "team-a", "train-4gpu")
	if err != nil {
		t.Fatal(err)
	}
	if train.Node == "" || !strings.HasPrefix(train.Assigned, "GPUs ") || len(train.Nodes) == 0 {
		t.Errorf("train-4gpu:\n%s", text(train))
	}
	g, err := explain.PodGroup(ctx, o, "team-b", "finetune")
	if err != nil {
		t.Fatal(err)
	}
	if g.MinMember != 3 || g.Bound != 3 {
		t.Errorf("finetune:\n%s", text(g))
	}
	q, err := explain.Quota(ctx, o, "team-a")
	if err != nil {
		t.Fatal(err)
	}
	if q.Quota.Max != "nvidia.com/gpu 16" || len(q.Pods) < 6 {
		t.Errorf("team-a's quota:\n%s", text(q))
	}
	c, err := explain.Cluster(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if s := text(c); !strings.Contains(s, "gpu-a100-mig") || !strings.Contains(s, "team-a/train-4gpu (GPUs") {
		t.Errorf("cluster:\n%s", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("playground: %v", err)
	}
}
