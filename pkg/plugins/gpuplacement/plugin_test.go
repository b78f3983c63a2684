package gpuplacement

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/internal/fakebind"
	"github.com/tessera-sched/tessera/pkg/kube"
)

// harness drives the real plugin through the framework's extension points
// the way the scheduler does, over NodeInfos it keeps itself, and binds
// pods through a fake API server so PreBind's annotation is the real one.
type harness struct {
	t      *testing.T
	ctx    context.Context
	client *clientsetfake.Clientset
	pl     *GPUPlacement
	args   string
	nodes  map[string]*framework.NodeInfo
	rec    *events.FakeRecorder
	topos  map[string]kube.NodeTopology
}

func newHarness(t *testing.T, args string, nodes ...*v1.Node) *harness {
	h := &harness{t: t, args: args, client: clientsetfake.NewSimpleClientset(), nodes: map[string]*framework.NodeInfo{}}
	fakebind.Install(h.client)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h.ctx = ctx
	for _, n := range nodes {
		ni := framework.NewNodeInfo()
		ni.SetNode(n)
		h.nodes[n.Name] = ni
	}
	h.restart()
	return h
}

// restart replaces the plugin with a fresh instance, as a scheduler restart
// would: only what is on the pods survives.
func (h *harness) restart() {
	h.t.Helper()
	h.rec = events.NewFakeRecorder(1000)
	fh, err := frameworkruntime.NewFramework(h.ctx, nil, nil,
		frameworkruntime.WithClientSet(h.client),
		frameworkruntime.WithInformerFactory(informers.NewSharedInformerFactory(h.client, 0)),
		frameworkruntime.WithEventRecorder(h.rec))
	if err != nil {
		h.t.Fatal(err)
	}
	p, err := New(h.ctx, &runtime.Unknown{Raw: []byte(h.args)}, fh)
	if err != nil {
		h.t.Fatal(err)
	}
	h.pl = p.(*GPUPlacement)
}

func (h *harness) sortedNodes() []*framework.NodeInfo {
	out := make([]*framework.NodeInfo, 0, len(h.nodes))
	for _, ni := range h.nodes {
		out = append(out, ni)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node().Name < out[j].Node().Name })
	return out
}

// result of one scheduling attempt.
type result struct {
	node     string
	scores   map[string]int64
	statuses map[string]*fwk.Status
	pre      *fwk.Status
}

// schedule runs PreFilter, Filter, Score and NormalizeScore over all nodes;
// pickNode chooses among the feasible ones (nil: highest score, then name).
// The chosen node is then reserved and bound.
func (h *harness) schedule(pod *v1.Pod, pickNode func([]fwk.NodeScore) string) result {
	h.t.Helper()
	res := result{scores: map[string]int64{}, statuses: map[string]*fwk.Status{}}
	cs := framework.NewCycleState()
	var all []fwk.NodeInfo
	for _, ni := range h.sortedNodes() {
		all = append(all, ni)
	}
	if _, s := h.pl.PreFilter(h.ctx, cs, pod, all); !s.IsSuccess() {
		res.pre = s
		return res
	}
	var list fwk.NodeScoreList
	for _, ni := range h.sortedNodes() {
		s := h.pl.Filter(h.ctx, cs, pod, ni)
		res.statuses[ni.Node().Name] = s
		if s.IsSuccess() {
			list = append(list, fwk.NodeScore{Name: ni.Node().Name})
		}
	}
	if len(list) == 0 {
		return res
	}
	if s := h.pl.PreScore(h.ctx, cs, pod, nil); !s.IsSuccess() {
		h.t.Fatalf("PreScore: %v", s)
	}
	for i := range list {
		score, s := h.pl.Score(h.ctx, cs, pod, h.nodes[list[i].Name])
		if !s.IsSuccess() {
			h.t.Fatalf("Score: %v", s)
		}
		list[i].Score = score
	}
	if s := h.pl.NormalizeScore(h.ctx, cs, pod, list); !s.IsSuccess() {
		h.t.Fatalf("NormalizeScore: %v", s)
	}
	for _, ns := range list {
		res.scores[ns.Name] = ns.Score
	}
	if pickNode != nil {
		res.node = pickNode(list)
	} else {
		best := list[0]
		for _, ns := range list[1:] {
			if ns.Score > best.Score {
				best = ns
			}
		}
		res.node = best.Name
	}
	if s := h.pl.Reserve(h.ctx, cs, pod, res.node); !s.IsSuccess() {
		h.t.Fatalf("Reserve: %v", s)
	}
	h.bind(cs, pod, res.node)
	return res
}

// bind creates the pod in the fake API server, runs Bind and adds the pod
// (with the annotation Bind wrote) to the node.
func (h *harness) bind(cs fwk.CycleState, pod *v1.Pod, node string) {
	h.t.Helper()
	if _, err := h.client.CoreV1().Pods(pod.Namespace).Create(h.ctx, pod, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	if s := h.pl.Bind(h.ctx, cs, pod, node); !s.IsSuccess() && !s.IsSkip() {
		h.t.Fatalf("Bind: %v", s)
	}
	bound, err := h.client.CoreV1().Pods(pod.Namespace).Get(h.ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	bound.Spec.NodeName = node
	h.nodes[node].AddPod(bound)
}

// remove deletes a bound pod, as its end (or a preemption) would.
func (h *harness) remove(pod *v1.Pod) {
	h.t.Helper()
	if err := h.nodes[pod.Spec.NodeName].RemovePod(klog.Background(), pod); err != nil {
		h.t.Fatal(err)
	}
	h.pl.ledger.forget(pod.UID)
	_ = h.client.CoreV1().Pods(pod.Namespace).Delete(h.ctx, pod.Name, metav1.DeleteOptions{})
}

// checkInvariants rebuilds every node from its pods' annotations alone and
// fails on any double-booked device, MIG overlap or GPU above 1000 milli
// (NodeState.Add rejects all of these).
func (h *harness) checkInvariants(step int) {
	h.t.Helper()
	if h.topos == nil {
		h.topos = map[string]kube.NodeTopology{}
		for name, ni := range h.nodes {
			if topo, ok := kube.TopologyFromLabels(ni.Node()); ok {
				h.topos[name] = topo
			}
		}
	}
	for _, ni := range h.sortedNodes() {
		topo, ok := h.topos[ni.Node().Name]
		if !ok {
			continue
		}
		s := gpu.NewNodeState(topo.Topo)
		for _, pi := range ni.GetPods() {
			pod := pi.GetPod()
			raw, has := pod.Annotations[kube.AnnotationAssignment]
			d, _ := kube.ParseDemand(pod)
			if !has {
				if d != nil && !d.IsZero() {
					h.t.Fatalf("step %d: GPU pod %s bound without an assignment", step, pod.Name)
				}
				continue
			}
			a, err := gpu.UnmarshalAssignment(raw)
			if err != nil {
				h.t.Fatalf("step %d: pod %s: %v", step, pod.Name, err)
			}
			if err := s.Add(a); err != nil {
				h.t.Fatalf("step %d: node %s: pod %s double-booked: %v", step, ni.Node().Name, pod.Name, err)
			}
			if got, want := a.Milli(), d.RequestOn(topo.SingleProfile).GPUEquivalentMilli(); got != want {
				h.t.Fatalf("step %d: pod %s holds %d milli, asked for %d", step, pod.Name, got, want)
			}
		}
	}
}

func gpuNode(name string, labels map[string]string, capacity map[v1.ResourceName]string) *v1.Node {
	w := st.MakeNode().Name(name).Capacity(capacity)
	for k, v := range labels {
		w = w.Label(k, v)
	}
	return w.Obj()
}

func h100(name string) *v1.Node {
	return gpuNode(name, map[string]string{kube.LabelProduct: "NVIDIA-H100-80GB-HBM3"},
		map[v1.ResourceName]string{v1.ResourceCPU: "96", v1.ResourceMemory: "1Ti", v1.ResourcePods: "110", kube.ResourceGPU: "8"})
}

func pcie4(name string) *v1.Node {
	return gpuNode(name, map[string]string{kube.LabelProduct: "NVIDIA-A100-PCIE-40GB"},
		map[v1.ResourceName]string{v1.ResourceCPU: "64", v1.ResourceMemory: "512Gi", v1.ResourcePods: "110", kube.ResourceGPU: "4"})
}

func migNode(name string) *v1.Node {
	return gpuNode(name, map[string]string{kube.LabelProduct: "NVIDIA-A100-SXM4-80GB", kube.LabelMIGStrategy: "mixed"},
		map[v1.ResourceName]string{v1.ResourceCPU: "96", v1.ResourceMemory: "1Ti", v1.ResourcePods: "110",
			"nvidia.com/mig-3g.40gb": "4", "nvidia.com/mig-2g.20gb": "2", "nvidia.com/mig-1g.10gb": "6"})
}

func gpuPod(name string, gpus int, annotations map[string]string) *v1.Pod {
	w := st.MakePod().Namespace("default").Name(name).UID(name)
	if gpus > 0 {
		w = w.Req(map[v1.ResourceName]string{kube.ResourceGPU: strconv.Itoa(gpus)})
	}
	for k, v := range annotations {
		w = w.Annotation(k, v)
	}
	return w.Obj()
}

// TestLocality: on an 8-GPU NVSwitch node whose GPUs 0,1,4,5 are taken, a
// 4-GPU pod that requires locality still fits (one NVSwitch domain spans both
// NUMA nodes); on a PCIe node with one free GPU per NUMA node a 2-GPU pod
// that requires locality does not, with a reason a person understands, while
// one that only prefers it does.
func TestLocality(t *testing.T) {
	h := newHarness(t, "", h100("h100"))
	for i, gpus := range [][]int{{0, 1}, {4, 5}} {
		a, _ := gpu.MarshalAssignment(gpu.Assignment{GPUs: gpus})
		p := gpuPod(fmt.Sprintf("held-%d", i), 2, map[string]string{kube.AnnotationAssignment: a})
		p.Spec.NodeName = "h100"
		h.nodes["h100"].AddPod(p)
	}
	res := h.schedule(gpuPod("four", 4, map[string]string{kube.AnnotationTopology: "required"}), nil)
	if res.node != "h100" {
		t.Fatalf("4-GPU pod not placed: %v", res.statuses)
	}
	pod, _ := h.client.CoreV1().Pods("default").Get(h.ctx, "four", metav1.GetOptions{})
	a, err := gpu.UnmarshalAssignment(pod.Annotations[kube.AnnotationAssignment])
	if err != nil || fmt.Sprint(a.GPUs) != "[2 3 6 7]" {
		t.Fatalf("assignment %v (%v), want GPUs [2 3 6 7]", a.GPUs, err)
	}
	if pod.Spec.NodeName != "h100" {
		t.Errorf("Bind set node %q, want h100 (annotation and node in one binding)", pod.Spec.NodeName)
	}

	h = newHarness(t, "", pcie4("pcie"))
	for i, g := range []int{0, 2} {
		a, _ := gpu.MarshalAssignment(gpu.Assignment{GPUs: []int{g}})
		p := gpuPod(fmt.Sprintf("held-%d", i), 1, map[string]string{kube.AnnotationAssignment: a})
		p.Spec.NodeName = "pcie"
		h.nodes["pcie"].AddPod(p)
	}
	res = h.schedule(gpuPod("pair-required", 2, map[string]string{kube.AnnotationTopology: "required"}), nil)
	if res.node != "" {
		t.Fatalf("2-GPU pod requiring locality placed across NUMA nodes on %s", res.node)
	}
	if s := res.statuses["pcie"]; s.Code() != fwk.Unschedulable || !strings.Contains(s.Message(), "one NVLink domain") {
		t.Errorf("status %v does not explain the locality failure", s)
	}
	if res = h.schedule(gpuPod("pair-preferred", 2, nil), nil); res.node != "pcie" {
		t.Errorf("2-GPU pod preferring locality not placed: %v", res.statuses)
	}
}

// TestMalformedAnnotation: bad input is rejected in PreFilter with a reason
// naming the annotation, as UnschedulableAndUnresolvable (no retry storm).
func TestMalformedAnnotation(t *testing.T) {
	h := newHarness(t, "", h100("h100"))
	res := h.schedule(gpuPod("bad", 0, map[string]string{kube.AnnotationShare: "half"}), nil)
	if res.pre == nil || res.pre.Code() != fwk.UnschedulableAndUnresolvable || !strings.Contains(res.pre.Message(), kube.AnnotationShare) {
		t.Fatalf("PreFilter status %v", res.pre)
	}
}

// TestUnknownMIGProfile: a MIG profile no GPU product has and no node
// advertises is refused in PreFilter saying so (upstream would only say
// "Insufficient"); one a node advertises is left to the normal checks.
func TestUnknownMIGProfile(t *testing.T) {
	h := newHarness(t, "", h100("h100"))
	typo := st.MakePod().Namespace("default").Name("typo").UID("typo").Req(map[v1.ResourceName]string{"nvidia.com/mig-9g.99gb": "1"}).Obj()
	res := h.schedule(typo, nil)
	if res.pre == nil || res.pre.Code() != fwk.UnschedulableAndUnresolvable || !strings.Contains(res.pre.Message(), `"9g.99gb" is not a MIG profile of any GPU product Tessera knows`) {
		t.Fatalf("PreFilter status %v", res.pre)
	}
	advertised := h100("future")
	advertised.Status.Allocatable["nvidia.com/mig-9g.99gb"] = resource.MustParse("1")
	h = newHarness(t, "", advertised)
	if res := h.schedule(typo, nil); res.pre != nil && strings.Contains(res.pre.Message(), "not a MIG profile") {
		t.Errorf("a profile a node advertises was refused as unknown: %v", res.pre)
	}
}

// TestNonGPUPodsSkipped: pods that ask for no GPU never reach GPUPlacement's
// Filter or Score.
func TestNonGPUPodsSkipped(t *testing.T) {
	h := newHarness(t, "", h100("h100"))
	_, s := h.pl.PreFilter(h.ctx, framework.NewCycleState(), gpuPod("plain", 0, nil), nil)
	if !s.IsSkip() {
		t.Fatalf("PreFilter = %v, want Skip", s)
	}
}

// TestScoringStrategies: a half-GPU share next to an existing half-GPU
// share (packing) versus on an empty node.
func TestScoringStrategies(t *testing.T) {
	for _, tc := range []struct {
		args string
		want string
	}{
		{args: `{"scoringStrategy":"FragmentationAware"}`, want: "a-busy"},
		{args: `{"scoringStrategy":"BinPack"}`, want: "a-busy"},
		{args: `{"scoringStrategy":"Spread"}`, want: "b-empty"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			h := newHarness(t, tc.args, h100("a-busy"), h100("b-empty"))
			// The learned demand mix: mostly whole GPUs and half shares.
			for i := 0; i < 50; i++ {
				h.pl.PreFilter(h.ctx, framework.NewCycleState(), gpuPod(fmt.Sprintf("whole-%d", i), 1, nil), nil)
				h.pl.PreFilter(h.ctx, framework.NewCycleState(), gpuPod(fmt.Sprintf("half-%d", i), 0, map[string]string{kube.AnnotationShare: "500"}), nil)
			}
			a, _ := gpu.MarshalAssignment(gpu.Assignment{Shares: []gpu.Share{{GPU: 0, Milli: 500}}})
			held := gpuPod("held", 0, map[string]string{kube.AnnotationShare: "500", kube.AnnotationAssignment: a})
			held.Spec.NodeName = "a-busy"
			h.nodes["a-busy"].AddPod(held)

			res := h.schedule(gpuPod("new", 0, map[string]string{kube.AnnotationShare: "500"}), nil)
			if res.node != tc.want {
				t.Errorf("placed on %s (scores %v), want %s", res.node, res.scores, tc.want)
			}
		})
	}
}

// TestPackingBreaksTies: when only 1-GPU pods are in demand, a 1-GPU pod
// fragments no node, whichever it takes; among such equally good nodes the
// one whose GPUs are most used wins, and the empty node stays whole.
func TestPackingBreaksTies(t *testing.T) {
	h := newHarness(t, `{"scoringStrategy":"FragmentationAware"}`, h100("a-empty"), h100("b-half"))
	for i := 0; i < 20; i++ {
		h.pl.PreFilter(h.ctx, framework.NewCycleState(), gpuPod(fmt.Sprintf("learn-%d", i), 1, nil), nil)
	}
	a, _ := gpu.MarshalAssignment(gpu.Assignment{GPUs: []int{0, 1, 2, 3}})
	held := gpuPod("held", 4, map[string]string{kube.AnnotationAssignment: a})
	held.Spec.NodeName = "b-half"
	h.nodes["b-half"].AddPod(held)

	res := h.schedule(gpuPod("new", 1, nil), nil)
	if res.node != "b-half" || res.scores["b-half"] <= res.scores["a-empty"] {
		t.Errorf("placed on %s with scores %v, want b-half scored above a-empty", res.node, res.scores)
	}
	if res.scores["a-empty"] <= 50 {
		t.Errorf("a-empty scored %d: an equally good node must stay in the top tier (above 50)", res.scores["a-empty"])
	}
}

// TestNoDoubleBookingProperty schedules thousands of random pods (whole GPUs
// with and without required locality, MIG slices, shares, plain pods) onto
// random feasible nodes through the real plugin, deletes some, restarts the
// plugin halfway (only the annotations survive), and after every step
// rebuilds each node from its pods' annotations alone: no device may be
// double-booked, no MIG slot overlap, no GPU above 1000 milli, and every pod
// holds exactly what it asked for.
func TestNoDoubleBookingProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	h := newHarness(t, "", h100("h100-a"), h100("h100-b"), pcie4("pcie-a"), pcie4("pcie-b"), migNode("mig-a"), migNode("mig-b"))
	var bound []*v1.Pod
	placed, rejected := 0, 0
	const steps = 3000
	for step := 0; step < steps; step++ {
		if step == steps/2 {
			h.restart()
		}
		if len(bound) > 0 && rng.Intn(3) == 0 {
			i := rng.Intn(len(bound))
			h.remove(bound[i])
			bound = append(bound[:i], bound[i+1:]...)
			h.checkInvariants(step)
			continue
		}
		name := fmt.Sprintf("p%d", step)
		var pod *v1.Pod
		switch rng.Intn(5) {
		case 0:
			ann := map[string]string{}
			if rng.Intn(2) == 0 {
				ann[kube.AnnotationTopology] = "required"
			}
			pod = gpuPod(name, []int{1, 2, 4, 8}[rng.Intn(4)], ann)
		case 1:
			pod = gpuPod(name, 0, map[string]string{kube.AnnotationShare: strconv.Itoa(100 * (1 + rng.Intn(9)))})
		case 2:
			profile := []string{"nvidia.com/mig-1g.10gb", "nvidia.com/mig-2g.20gb", "nvidia.com/mig-3g.40gb"}[rng.Intn(3)]
			pod = st.MakePod().Namespace("default").Name(name).UID(name).Req(map[v1.ResourceName]string{v1.ResourceName(profile): "1"}).Obj()
		case 3:
			pod = gpuPod(name, 1, nil)
		default:
			pod = gpuPod(name, 0, nil)
		}
		d, _ := kube.ParseDemand(pod)
		if d.IsZero() {
			continue // plain pods are Skipped by PreFilter; nothing to place.
		}
		res := h.schedule(pod, func(list []fwk.NodeScore) string { return list[rng.Intn(len(list))].Name })
		if res.node == "" {
			rejected++
			continue
		}
		placed++
		bound = append(bound, h.nodes[res.node].GetPods()[len(h.nodes[res.node].GetPods())-1].GetPod())
		h.checkInvariants(step)
	}
	if placed < 500 || rejected < 100 {
		t.Errorf("weak test: %d placed, %d rejected", placed, rejected)
	}
	t.Logf("%d placed, %d rejected", placed, rejected)
}
