package integration

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tessera-sched/tessera/pkg/explain"
)

// TestExplain runs `tessera explain`'s reports against a live cluster with
// the shipped profile: a pod no node has room for (each node's refusal and
// free GPUs), a pod over its quota's max (refused before any node, with the
// arithmetic), a bound pod (where it would go again, with scores), a pod
// group missing a member, and a namespace's quota.
func TestExplain(t *testing.T) {
	installCRDs(t)
	createNodes(t,
		nodeSpec{name: "explain-a", cpu: "64", memory: "512Gi", gpus: 8, labels: h100Labels},
		nodeSpec{name: "explain-b", cpu: "64", memory: "512Gi", gpus: 8, labels: h100Labels})
	free := newNamespace(t)
	capped := newNamespace(t)
	gpu := func(n int64) v1.ResourceList {
		return v1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(n, resource.DecimalSI)}
	}
	createQuota(t, capped, gpu(2), gpu(4))
	startScheduler(t, cp.Config, schedulerConfig(t))
	on := func(node string) map[string]string { return map[string]string{"kubernetes.io/hostname": node} }
	createPod(t, free, podSpec{name: "busy-a", schedulerName: "tessera-scheduler", gpus: 5, nodeSelector: on("explain-a")})
	createPod(t, free, podSpec{name: "busy-b", schedulerName: "tessera-scheduler", gpus: 5, nodeSelector: on("explain-b")})
	waitBound(t, free, "busy-a", 30*time.Second)
	waitBound(t, free, "busy-b", 30*time.Second)
	createPod(t, capped, podSpec{name: "q-2", schedulerName: "tessera-scheduler", gpus: 2, nodeSelector: on("explain-b")})
	waitBound(t, capped, "q-2", 30*time.Second)
	createPod(t, free, podSpec{name: "wide-4", schedulerName: "tessera-scheduler", gpus: 4})
	createPod(t, capped, podSpec{name: "q-3", schedulerName: "tessera-scheduler", gpus: 3})
	waitUnschedulable(t, free, "wide-4", 30*time.Second)
	waitUnschedulable(t, capped, "q-3", 30*time.Second)
	createPodGroup(t, free, "pair", 2, 30, nil)
	createMember(t, free, "pair", "pair-0", 1)
	waitUnschedulable(t, free, "pair-0", 30*time.Second)

	ctx := context.Background()
	o := explain.Options{Config: cp.Config}

	wide, err := explain.Pod(ctx, o, free, "wide-4")
	if err != nil {
		t.Fatal(err)
	}
	if len(wide.Nodes) != 2 {
		t.Fatalf("wide-4: %d node verdicts, want 2: %+v", len(wide.Nodes), wide.Nodes)
	}
	for _, n := range wide.Nodes {
		if n.Fits || n.Refused == nil || !strings.Contains(strings.Join(n.Refused.Reasons, " "), "nvidia.com/gpu") && !strings.Contains(strings.Join(n.Refused.Reasons, " "), "GPU") {
			t.Errorf("wide-4 on %s: %+v, want refused for lack of GPUs", n.Node, n)
		}
		if want := map[string]string{"explain-a": "3 of 8 whole", "explain-b": "1 of 8 whole"}[n.Node]; !strings.HasPrefix(n.FreeGPUs, want) {
			t.Errorf("wide-4: %s free GPUs %q, want %s", n.Node, n.FreeGPUs, want)
		}
	}
	if wide.Condition == nil || wide.Quota != nil || wide.Asks != "4 GPUs, cpu 100m, memory 0" {
		t.Errorf("wide-4: condition %+v, quota %+v, asks %q", wide.Condition, wide.Quota, wide.Asks)
	}

	q3, err := explain.Pod(ctx, o, capped, "q-3")
	if err != nil {
		t.Fatal(err)
	}
	if q3.PreFilter == nil || q3.PreFilter.Plugin != "ElasticQuota" || !strings.Contains(strings.Join(q3.PreFilter.Reasons, " "), "above its max 4") {
		t.Errorf("q-3: pre-filter verdict %+v, want ElasticQuota's refusal over max 4", q3.PreFilter)
	}
	if q3.Quota == nil || !strings.Contains(q3.Quota.Used, "nvidia.com/gpu 2") || !strings.Contains(q3.Quota.Max, "nvidia.com/gpu 4") || !strings.HasPrefix(q3.Quota.Verdict, "refused") {
		t.Errorf("q-3: quota %+v, want used 2, max 4, refused", q3.Quota)
	}

	bound, err := explain.Pod(ctx, o, capped, "q-2")
	if err != nil {
		t.Fatal(err)
	}
	if bound.Node == "" || bound.Assigned == "" || len(bound.Best) == 0 || bound.Best[0].Plugins["GPUPlacement"] == 0 {
		t.Errorf("q-2: node %q, assigned %q, best %+v; want its node, assignment and GPUPlacement's scores", bound.Node, bound.Assigned, bound.Best)
	}
	var out bytes.Buffer
	bound.WriteText(&out)
	for _, want := range []string{"Assigned: GPUs", "Best nodes by score", "the pod is bound"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("q-2's text lacks %q:\n%s", want, out.String())
		}
	}

	g, err := explain.PodGroup(ctx, o, free, "pair")
	if err != nil {
		t.Fatal(err)
	}
	if g.MinMember != 2 || len(g.Members) != 1 || g.Pending != 1 || !strings.Contains(g.Members[0].Waiting, "1 of 2 pods") {
		t.Errorf("pair: %+v", g)
	}
	out.Reset()
	g.WriteText(&out)
	if !strings.Contains(out.String(), "only 1 of its 2 pods exist") {
		t.Errorf("pair's text:\n%s", out.String())
	}

	qr, err := explain.Quota(ctx, o, capped)
	if err != nil {
		t.Fatal(err)
	}
	if len(qr.Pods) != 2 || qr.Quota.Min != "nvidia.com/gpu 2" {
		t.Errorf("quota of %s: %+v", capped, qr)
	}
	if _, err := explain.Quota(ctx, o, free); err == nil || !strings.Contains(err.Error(), "has no ElasticQuota") {
		t.Errorf("quota of a namespace without one: %v", err)
	}
}
