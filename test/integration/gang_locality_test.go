package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
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

// TestGangRoomHeldWhileAssembling: while a group assembles, a pod outside
// it is scheduled between its members' cycles (here: the second member is
// held by a scheduling gate, so the first waits at Permit). That pod must
// not take the room the next member was planned on. The first 2-GPU member
// goes to hold-node-1 (4 GPUs free, room for the whole pair; hold-node-2
// has 3); without the hold a lone 2-GPU pod then fills hold-node-1 (best
// fit) and the pair ends up on two nodes.
func TestGangRoomHeldWhileAssembling(t *testing.T) {
	installCRDs(t)
	createNodes(t,
		nodeSpec{name: "hold-node-1", cpu: "96", memory: "1Ti", gpus: 8, labels: h100Labels},
		nodeSpec{name: "hold-node-2", cpu: "96", memory: "1Ti", gpus: 8, labels: h100Labels})
	ns := newNamespace(t)
	startScheduler(t, cp.Config, schedulerConfig(t))
	on := func(node string) map[string]string { return map[string]string{"kubernetes.io/hostname": node} }
	createPod(t, ns, podSpec{name: "busy-4", schedulerName: "tessera-scheduler", gpus: 4, nodeSelector: on("hold-node-1")})
	createPod(t, ns, podSpec{name: "busy-5", schedulerName: "tessera-scheduler", gpus: 5, nodeSelector: on("hold-node-2")})
	waitBound(t, ns, "busy-4", 60*time.Second)
	waitBound(t, ns, "busy-5", 60*time.Second)

	createPodGroup(t, ns, "pair", 2, 60, nil)
	member := map[string]string{schedv1alpha1.PodGroupLabel: "pair"}
	createPod(t, ns, podSpec{name: "pair-0", schedulerName: "tessera-scheduler", gpus: 2, labels: member})
	createPod(t, ns, podSpec{name: "pair-1", schedulerName: "tessera-scheduler", gpus: 2, labels: member, gates: []string{"example.com/later"}})
	// pair-0 takes the slot and waits at Permit for pair-1.
	waitGroupStatus(t, ns, "pair", "Scheduling", func(s schedv1alpha1.PodGroupStatus) bool { return s.Phase == schedv1alpha1.PodGroupScheduling })
	time.Sleep(time.Second)

	createPod(t, ns, podSpec{name: "lone-2", schedulerName: "tessera-scheduler", gpus: 2})
	lone := waitBound(t, ns, "lone-2", 30*time.Second)

	p, err := cp.Client.CoreV1().Pods(ns).Get(context.Background(), "pair-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.SchedulingGates = nil
	if _, err := cp.Client.CoreV1().Pods(ns).Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a, b := waitBound(t, ns, "pair-0", 60*time.Second), waitBound(t, ns, "pair-1", 60*time.Second)
	if a.Spec.NodeName != b.Spec.NodeName {
		t.Errorf("pair's members on %s and %s, lone-2 on %s: the pod scheduled mid-assembly took the second member's room", a.Spec.NodeName, b.Spec.NodeName, lone.Spec.NodeName)
	}
	if lone.Spec.NodeName == a.Spec.NodeName {
		t.Errorf("lone-2 on %s with the pair", lone.Spec.NodeName)
	}
}

// TestGangHoldEndsWithAssembly: a pod turned away by the hold (4 GPUs free
// beside the waiting member, 2 of them held for the gated one) says why,
// and binds as soon as the assembly ends — here, failed because a member
// was deleted — not at the queue's next periodic flush.
func TestGangHoldEndsWithAssembly(t *testing.T) {
	installCRDs(t)
	createNodes(t, nodeSpec{name: "held-node", cpu: "96", memory: "1Ti", gpus: 8, labels: h100Labels})
	ns := newNamespace(t)
	startScheduler(t, cp.Config, schedulerConfig(t))
	createPod(t, ns, podSpec{name: "busy-2", schedulerName: "tessera-scheduler", gpus: 2})
	waitBound(t, ns, "busy-2", 60*time.Second)

	createPodGroup(t, ns, "pair", 2, 60, nil)
	member := map[string]string{schedv1alpha1.PodGroupLabel: "pair"}
	createPod(t, ns, podSpec{name: "pair-0", schedulerName: "tessera-scheduler", gpus: 2, labels: member})
	createPod(t, ns, podSpec{name: "pair-1", schedulerName: "tessera-scheduler", gpus: 2, labels: member, gates: []string{"example.com/later"}})
	waitGroupStatus(t, ns, "pair", "Scheduling", func(s schedv1alpha1.PodGroupStatus) bool { return s.Phase == schedv1alpha1.PodGroupScheduling })
	time.Sleep(time.Second)

	createPod(t, ns, podSpec{name: "wide-4", schedulerName: "tessera-scheduler", gpus: 4})
	waitCondition(t, ns, "wide-4", "room held for 1 member of pod group "+ns+"/pair, which is being placed", 30*time.Second)

	if err := cp.Client.CoreV1().Pods(ns).Delete(context.Background(), "pair-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitBound(t, ns, "wide-4", 30*time.Second)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("wide-4 bound %v after the assembly ended, want within seconds", d.Round(time.Millisecond))
	}
}
