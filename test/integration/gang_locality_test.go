package integration

import (
	"fmt"
	"testing"
	"time"
)

var h100Labels = map[string]string{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}

// TestGangPacksFinetuneOnOneNode is the playground's fine-tuning case:
// without any annotation, a group of three 1-GPU workers lands on one node,
// on GPUs of one NUMA node, where a lone 1-GPU pod would go elsewhere: the
// fuller node (2 GPUs free) first, and on the chosen node the fuller NUMA
// node (GPUs 2 and 3 free, beside 4-7).
func TestGangPacksFinetuneOnOneNode(t *testing.T) {
	installCRDs(t)
	createNodes(t,
		nodeSpec{name: "finetune-node-1", cpu: "96", memory: "1Ti", gpus: 8, labels: h100Labels},
		nodeSpec{name: "finetune-node-2", cpu: "96", memory: "1Ti", gpus: 8, labels: h100Labels})
	ns := newNamespace(t)
	startScheduler(t, cp.Config, schedulerConfig(t))
	on := func(node string) map[string]string { return map[string]string{"kubernetes.io/hostname": node} }
	createPod(t, ns, podSpec{name: "busy-6", schedulerName: "tessera-scheduler", gpus: 6, nodeSelector: on("finetune-node-1")})
	waitBound(t, ns, "busy-6", 60*time.Second)
	createPod(t, ns, podSpec{name: "busy-2", schedulerName: "tessera-scheduler", gpus: 2, nodeSelector: on("finetune-node-2")})
	if got := assignmentOf(t, waitBound(t, ns, "busy-2", 60*time.Second)).GPUs; len(got) != 2 || got[0]/4 != 0 || got[1]/4 != 0 {
		t.Fatalf("set-up: busy-2 got GPUs %v, want two of NUMA node 0", got)
	}

	createPodGroup(t, ns, "finetune", 3, 30, nil)
	for i := 0; i < 3; i++ {
		createMember(t, ns, "finetune", fmt.Sprintf("finetune-%d", i), 1)
	}
	nodes := map[string]bool{}
	numa := map[int]bool{}
	var gpus [][]int
	for i := 0; i < 3; i++ {
		p := waitBound(t, ns, fmt.Sprintf("finetune-%d", i), 60*time.Second)
		nodes[p.Spec.NodeName] = true
		a := assignmentOf(t, p)
		gpus = append(gpus, a.GPUs)
		for _, g := range a.GPUs {
			numa[g/4] = true // 8 H100s: GPUs 0-3 on NUMA node 0, 4-7 on 1
		}
	}
	if len(nodes) != 1 || !nodes["finetune-node-2"] {
		t.Errorf("finetune's 3 workers on nodes %v (GPUs %v), want all on finetune-node-2, the node with room for all", nodes, gpus)
	}
	if len(numa) != 1 {
		t.Errorf("finetune's workers got GPUs %v across NUMA nodes", gpus)
	}
}

// TestGangSpansFewestNodes: a group of eight 2-GPU workers on three empty
// 8-GPU nodes takes exactly two of them.
func TestGangSpansFewestNodes(t *testing.T) {
	installCRDs(t)
	createNodes(t,
		nodeSpec{name: "span-node-1", cpu: "96", memory: "1Ti", gpus: 8, labels: h100Labels},
		nodeSpec{name: "span-node-2", cpu: "96", memory: "1Ti", gpus: 8, labels: h100Labels},
		nodeSpec{name: "span-node-3", cpu: "96", memory: "1Ti", gpus: 8, labels: h100Labels})
	ns := newNamespace(t)
	startScheduler(t, cp.Config, schedulerConfig(t))
	createPodGroup(t, ns, "ddp", 8, 30, nil)
	for i := 0; i < 8; i++ {
		createMember(t, ns, "ddp", fmt.Sprintf("ddp-%d", i), 2)
	}
	spanned := map[string]int{}
	for i := 0; i < 8; i++ {
		spanned[waitBound(t, ns, fmt.Sprintf("ddp-%d", i), 60*time.Second).Spec.NodeName]++
	}
	if len(spanned) != 2 {
		t.Errorf("8 x 2-GPU workers spread over %v, want exactly 2 nodes", spanned)
	}
}
