//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/tessera-sched/tessera/manifests/render"
	"github.com/tessera-sched/tessera/pkg/audit"
	"github.com/tessera-sched/tessera/pkg/gpu"
)

const (
	tesseraNS  = "tessera-system"
	tesseraApp = "app.kubernetes.io/name=tessera-scheduler"
)

// localImages points the manifests at the images imported into the nodes,
// the one change a user makes (kustomize's images: field) when deploying
// from their own registry.
var localImages = []render.Image{{Name: "ghcr.io/tessera-sched/tessera-scheduler", NewName: "tessera.local/tessera-scheduler", NewTag: "dev"}}

// TestTesseraOnRealNodes deploys manifests/base as a user does, schedules
// pods that then run, fails the leader over, and switches to
// manifests/default-scheduler. The stages run in order and stop at the
// first failure: each stands on the one before.
func TestTesseraOnRealNodes(t *testing.T) {
	stages := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"deploy manifests/base", deployBase},
		{"pods bound by tessera-scheduler run to completion", podsRun},
		{"deploy manifests/agent-device-plugin (simulated GPUs)", deployAgent},
		{"containers get exactly the assigned GPUs", devicesHandedOut},
		{"share pods get the GPU of their share", sharesHandedOut},
		{"a MIG pod gets the instance the agent creates where the scheduler placed it", migHandedOut},
		{"kubelet restart: running pods kept, device plugin registers again", kubeletRestart},
		{"leader failover", leaderFailover},
		{"leader killed (SIGKILL) while a gang assembles", leaderKilledMidGang},
		{"kube-apiserver killed (SIGKILL) for 15s while a gang assembles", apiServerKilled},
		{"manifests/default-scheduler replaces the default scheduler", defaultScheduler},
	}
	for _, s := range stages {
		if !t.Run(s.name, s.run) {
			t.Fatalf("stage %q failed; later stages depend on it", s.name)
		}
	}
}

func apply(t *testing.T, dir string) {
	t.Helper()
	if err := cluster.Apply(context.Background(), dir, render.Overlay{Images: localImages}); err != nil {
		t.Fatal(err)
	}
}

func deployBase(t *testing.T) {
	start := time.Now()
	apply(t, "base")
	d := waitRollout(t, 3*time.Minute)
	holder := waitLeader(t, "", time.Minute)
	pods := schedulerPods(t)
	var where []string
	for _, p := range pods {
		where = append(where, fmt.Sprintf("%s on %s", p.Name, p.Spec.NodeName))
	}
	t.Logf("Deployment %s: %d/%d replicas available after %.1fs (%s); leader %s",
		d.Name, d.Status.AvailableReplicas, *d.Spec.Replicas, time.Since(start).Seconds(), strings.Join(where, ", "), holder)
}

func podsRun(t *testing.T) {
	ns := "e2e-tessera"
	createNamespace(t, ns)
	ctx := context.Background()
	leader := waitLeader(t, "", time.Minute)

	plain := busyboxPod(ns, "exit-3", "tessera-scheduler", "echo scheduled by tessera; exit 3")
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, plain, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitTerminated(t, ns, plain.Name, 2*time.Minute)
	if code, ok := exitCode(got); !ok || code != 3 {
		t.Fatalf("pod %s: exit code %d (terminated: %v), want 3", plain.Name, code, ok)
	}
	expectScheduledBy(t, ns, plain.Name, "tessera-scheduler", leader)
	t.Logf("pod %s exited 3 on %s", plain.Name, got.Spec.NodeName)
}

// deployAgent deploys manifests/agent-device-plugin as a user replacing
// NVIDIA's device plugin does, with the agent's image replaced and
// --simulate added (the one change for a node without GPUs), after the
// RuntimeClass nvidia the GPU Operator would have created. The agent
// publishes the node's NodeGPUTopology and the kubelet advertises its
// eight GPUs.
func deployAgent(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	if err := cluster.DeploySimulatedAgent(ctx, "dgx-h100", []string{gpuNode}, 7, 2*time.Minute, "--simulate-mig=7", "--mig-layout=dynamic"); err != nil {
		t.Fatal(err)
	}
	topo, err := cluster.Dynamic.Resource(nodeGPUTopologies).Get(ctx, gpuNode, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the agent published no NodeGPUTopology for %s: %v", gpuNode, err)
	}
	gpus, _, _ := unstructured.NestedSlice(topo.Object, "spec", "gpus")
	if len(gpus) != 8 {
		t.Fatalf("NodeGPUTopology %s lists %d GPUs, want 8", gpuNode, len(gpus))
	}
	if mode, _, _ := unstructured.NestedString(gpus[7].(map[string]any), "mig", "mode"); mode != "Dynamic" {
		t.Fatalf("NodeGPUTopology %s: GPU 7 MIG mode %q, want Dynamic", gpuNode, mode)
	}
	t.Logf("agent DaemonSet on %s: NodeGPUTopology with %d GPUs (GPU 7 MIG-dynamic) published and nvidia.com/gpu=7 advertised after %.1fs", gpuNode, len(gpus), time.Since(start).Seconds())
}

// devicesHandedOut checks the device plugin end to end on the real
// kubelet: each container's NVIDIA_VISIBLE_DEVICES is exactly the UUIDs the
// scheduler assigned its pod; a pod the stock default scheduler placed on
// the same node gets other GPUs; and a pod whose assignment names a GPU the
// node lacks fails admission with the reason while the agent keeps serving.
func devicesHandedOut(t *testing.T) {
	ns := "e2e-devices"
	createNamespace(t, ns)
	ctx := context.Background()
	const script = `echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"; sleep 20`

	bad := busyboxPod(ns, "gpu-9", "", script)
	bad.Spec.NodeName = gpuNode // no scheduler: an assignment written by hand
	bad.Annotations = map[string]string{gpu.AnnotationAssignment: `{"v":1,"gpus":[9]}`}
	bad.Spec.Containers[0].Resources.Limits = v1.ResourceList{gpu.ResourceGPU: mustQuantity("1")}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitTerminated(t, ns, bad.Name, time.Minute)
	if got.Status.Phase != v1.PodFailed || !strings.Contains(got.Status.Message, "GPU 9") {
		t.Fatalf("pod %s with an assignment of GPU 9 (the node has 0-7): phase %s, reason %q, message %q; want it refused naming GPU 9",
			bad.Name, got.Status.Phase, got.Status.Reason, got.Status.Message)
	}
	t.Logf("pod %s refused at admission: %s: %s", bad.Name, got.Status.Reason, got.Status.Message)

	var tessera []*v1.Pod
	for _, spec := range []struct {
		name string
		gpus string
	}{{"four-gpus", "4"}, {"one-gpu", "1"}} {
		p := busyboxPod(ns, spec.name, "tessera-scheduler", script)
		p.Spec.Containers[0].Resources.Limits = v1.ResourceList{gpu.ResourceGPU: mustQuantity(spec.gpus)}
		if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tessera = append(tessera, p)
	}
	held := sets.New[string]()
	for _, p := range tessera {
		running := waitRunning(t, ns, p.Name, 2*time.Minute)
		a, err := gpu.UnmarshalAssignment(running.Annotations[gpu.AnnotationAssignment])
		if err != nil || len(a.UUIDs) == 0 {
			t.Fatalf("pod %s: no assignment with UUIDs (%v): %q", p.Name, err, running.Annotations[gpu.AnnotationAssignment])
		}
		visible := visibleDevices(t, ns, p.Name)
		if !sets.New(visible...).Equal(sets.New(a.UUIDs...)) {
			t.Fatalf("pod %s: the container got %v, the scheduler assigned %v (%s)", p.Name, visible, a.UUIDs, a.Describe())
		}
		held.Insert(visible...)
		t.Logf("pod %s on %s: assigned %s, container sees exactly those UUIDs", p.Name, running.Spec.NodeName, a.Describe())
	}

	foreign := busyboxPod(ns, "default-scheduler-gpu", "", script)
	foreign.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": gpuNode}
	foreign.Spec.Containers[0].Resources.Limits = v1.ResourceList{gpu.ResourceGPU: mustQuantity("1")}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, ns, foreign.Name, 2*time.Minute)
	visible := visibleDevices(t, ns, foreign.Name)
	if len(visible) != 1 || held.Has(visible[0]) {
		t.Fatalf("pod %s (placed by the default scheduler) got %v; the Tessera pods hold %v", foreign.Name, visible, sets.List(held))
	}
	t.Logf("pod %s (default scheduler, no assignment) got %s, none of the Tessera pods' GPUs", foreign.Name, visible[0])

	// The agent reads the kubelet's PodResources and records the foreign
	// pod's real GPU on it; the scheduler then accounts that GPU, not a
	// guess, and the next Tessera pod gets one of the GPUs really free.
	var realized gpu.Assignment
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, foreign.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		realized, err = gpu.UnmarshalAssignment(p.Annotations[gpu.AnnotationRealized])
		return err == nil && len(realized.UUIDs) > 0, nil
	})
	if err != nil || !slices.Equal(realized.UUIDs, visible) {
		t.Fatalf("pod %s: %s is %v (UUIDs %v), want the GPU its container saw, %v", foreign.Name, gpu.AnnotationRealized, realized.Describe(), realized.UUIDs, visible)
	}
	held.Insert(visible...)
	next := busyboxPod(ns, "one-more-gpu", "tessera-scheduler", script)
	next.Spec.Containers[0].Resources.Limits = v1.ResourceList{gpu.ResourceGPU: mustQuantity("1")}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, next, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := waitRunning(t, ns, next.Name, 2*time.Minute)
	nextSaw := visibleDevices(t, ns, next.Name)
	if len(nextSaw) != 1 || held.Has(nextSaw[0]) {
		t.Fatalf("pod %s got %v; the GPUs in use are %v", next.Name, nextSaw, sets.List(held))
	}
	t.Logf("pod %s: %s recorded on the foreign pod; %s then got %s (%s), a GPU really free", foreign.Name, realized.Describe(), next.Name, nextSaw[0], running.Annotations[gpu.AnnotationAssignment])
	for _, name := range []string{"four-gpus", "one-gpu", foreign.Name, next.Name} {
		_ = cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	}
}

// sharesHandedOut checks GPU shares end to end: share pods written as
// users write them (only the annotation tessera.dev/gpu-milli) get a share
// slot from the shipped admission policy, are placed by Tessera, and each
// container sees exactly the GPU of its share; a hand-written assignment
// that would take a GPU over 1000m, and a share pod the stock scheduler
// placed, fail admission naming why.
func sharesHandedOut(t *testing.T) {
	ns := "e2e-shares"
	createNamespace(t, ns)
	ctx := context.Background()
	const script = `echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"; echo "TESSERA_GPU_MILLI=$TESSERA_GPU_MILLI"; sleep 20`
	milli := map[string]int{"half": 500, "quarter-a": 250, "quarter-b": 250}
	for _, name := range []string{"half", "quarter-a", "quarter-b"} {
		p := busyboxPod(ns, name, "tessera-scheduler", script)
		p.Annotations = map[string]string{gpu.AnnotationShare: fmt.Sprint(milli[name])}
		created, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if q := created.Spec.Containers[0].Resources.Limits[gpu.ResourceShareSlot]; q.Value() != 1 {
			t.Fatalf("pod %s: the admission policy gave it %s=%s, want 1", name, gpu.ResourceShareSlot, q.String())
		}
	}
	perGPU := map[int]int{}
	byName := map[string]gpu.Share{}
	for _, name := range []string{"half", "quarter-a", "quarter-b"} {
		running := waitRunning(t, ns, name, 2*time.Minute)
		a, err := gpu.UnmarshalAssignment(running.Annotations[gpu.AnnotationAssignment])
		if err != nil || len(a.Shares) != 1 || len(a.UUIDs) != 1 || a.Shares[0].Milli != milli[name] {
			t.Fatalf("pod %s: assignment %q (%v), want one %dm share with its GPU's UUID", name, running.Annotations[gpu.AnnotationAssignment], err, milli[name])
		}
		visible := visibleDevices(t, ns, name)
		if !slices.Equal(visible, a.UUIDs) {
			t.Fatalf("pod %s: the container got %v, its share is of %v (%s)", name, visible, a.UUIDs, a.Describe())
		}
		perGPU[a.Shares[0].GPU] += a.Shares[0].Milli
		byName[name] = a.Shares[0]
		t.Logf("pod %s on %s: assigned %s, container sees exactly %s", name, running.Spec.NodeName, a.Describe(), visible[0])
	}
	for g, m := range perGPU {
		if m > 1000 {
			t.Fatalf("GPU %d holds shares of %dm", g, m)
		}
	}

	// An assignment written by hand onto the GPU of the 500m share that
	// would take it to 1400m: refused at admission, naming the sum.
	over := busyboxPod(ns, "over-share", "", script)
	over.Spec.NodeName = gpuNode
	g := byName["half"].GPU
	over.Annotations = map[string]string{
		gpu.AnnotationShare:      "900",
		gpu.AnnotationAssignment: fmt.Sprintf(`{"v":1,"shares":[{"gpu":%d,"milli":900}]}`, g),
	}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, over, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitTerminated(t, ns, over.Name, time.Minute)
	if got.Status.Phase != v1.PodFailed || !strings.Contains(got.Status.Message, "over 1000m") {
		t.Fatalf("pod %s (900m more on GPU %d): phase %s, message %q; want it refused, over 1000m", over.Name, g, got.Status.Phase, got.Status.Message)
	}
	t.Logf("pod %s refused at admission: %s", over.Name, got.Status.Message)

	foreign := busyboxPod(ns, "default-scheduler-share", "", script)
	foreign.Annotations = map[string]string{gpu.AnnotationShare: "100"}
	foreign.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": gpuNode}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got = waitTerminated(t, ns, foreign.Name, time.Minute)
	if got.Status.Phase != v1.PodFailed || !strings.Contains(got.Status.Message, "no Tessera scheduler placed it") {
		t.Fatalf("pod %s (a share pod of the stock scheduler): phase %s, message %q; want it refused", foreign.Name, got.Status.Phase, got.Status.Message)
	}
	t.Logf("pod %s refused at admission: %s", foreign.Name, got.Status.Message)
	for _, name := range []string{"half", "quarter-a", "quarter-b", over.Name, foreign.Name} {
		_ = cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	}
}

// migHandedOut checks dynamic MIG end to end on GPU 7 of the GPU node
// (simulated MIG-enabled, published MIG-dynamic, no instances): a pod
// asking for nvidia.com/mig-3g.40gb is placed by Tessera at a slot where no
// instance exists (the node advertises every legal slot, so upstream's
// resource fit lets it through), the agent creates the instance in the
// kubelet's Allocate, the container sees that instance's MIG UUID, and
// the NodeGPUTopology lists it where the scheduler placed it; a
// hand-written 1g.10gb assignment overlapping it is refused naming the
// overlap; once the pod is gone the instance is destroyed.
func migHandedOut(t *testing.T) {
	ns := "e2e-mig"
	createNamespace(t, ns)
	ctx := context.Background()
	const script = `echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"; sleep 3600`
	p := busyboxPod(ns, "mig-3g", "tessera-scheduler", script)
	p.Spec.Containers[0].Resources.Limits = v1.ResourceList{"nvidia.com/mig-3g.40gb": mustQuantity("1")}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	running := waitRunning(t, ns, p.Name, 2*time.Minute)
	ready := time.Since(start)
	a, err := gpu.UnmarshalAssignment(running.Annotations[gpu.AnnotationAssignment])
	if err != nil || len(a.MIG) != 1 || a.MIG[0].GPU != 7 || a.MIG[0].Profile != "3g.40gb" {
		t.Fatalf("pod %s: assignment %q (%v), want one 3g.40gb slot on GPU 7", p.Name, running.Annotations[gpu.AnnotationAssignment], err)
	}
	slot := a.MIG[0]
	visible := visibleDevices(t, ns, p.Name)
	if len(visible) != 1 || !strings.HasPrefix(visible[0], "MIG-") {
		t.Fatalf("pod %s: the container got %v, want one MIG device UUID", p.Name, visible)
	}
	instances := func() []any {
		topo, err := cluster.Dynamic.Resource(nodeGPUTopologies).Get(ctx, gpuNode, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		gpus, _, _ := unstructured.NestedSlice(topo.Object, "spec", "gpus")
		if len(gpus) < 8 {
			return nil
		}
		insts, _, _ := unstructured.NestedSlice(gpus[7].(map[string]any), "mig", "instances")
		return insts
	}
	var published []any
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		published = instances()
		for _, in := range published {
			m := in.(map[string]any)
			if m["profile"] == slot.Profile && m["start"] == int64(slot.Start) && m["uuid"] == visible[0] {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("NodeGPUTopology %s GPU 7 lists %v, want the 3g.40gb instance at %d with the UUID the container saw, %s", gpuNode, published, slot.Start, visible[0])
	}
	t.Logf("pod %s running %.1fs after creation: Tessera placed %s, the agent created it, the container sees %s, the NodeGPUTopology lists it", p.Name, ready.Seconds(), a.Describe(), visible[0])

	over := busyboxPod(ns, "mig-overlap", "", script)
	over.Spec.NodeName = gpuNode
	over.Spec.Containers[0].Resources.Limits = v1.ResourceList{"nvidia.com/mig-1g.10gb": mustQuantity("1")}
	over.Annotations = map[string]string{gpu.AnnotationAssignment: fmt.Sprintf(`{"v":1,"mig":[{"gpu":7,"profile":"1g.10gb","start":%d}]}`, slot.Start)}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, over, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitTerminated(t, ns, over.Name, time.Minute)
	if got.Status.Phase != v1.PodFailed || !strings.Contains(got.Status.Message, "overlaps an existing MIG instance") {
		t.Fatalf("pod %s (1g.10gb at %d, inside the 3g instance): phase %s, message %q; want it refused, naming the overlap", over.Name, slot.Start, got.Status.Phase, got.Status.Message)
	}
	t.Logf("pod %s refused at admission: %s", over.Name, got.Status.Message)

	zero := int64(0)
	for _, name := range []string{p.Name, over.Name} {
		_ = cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}
	start = time.Now()
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		published = instances()
		return len(published) == 0, nil
	})
	if err != nil {
		t.Fatalf("after %s was deleted, GPU 7 still lists instances %v", p.Name, published)
	}
	t.Logf("pod %s deleted: its instance destroyed and unpublished after %.1fs", p.Name, time.Since(start).Seconds())

	// What happened is on the agent's /metrics, through the API server's
	// pod proxy as Prometheus would scrape the pod.
	agents, err := cluster.Client.CoreV1().Pods("tessera-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=tessera-agent", FieldSelector: "spec.nodeName=" + gpuNode})
	if err != nil || len(agents.Items) != 1 {
		t.Fatalf("the agent pod of %s: %v (%d pods)", gpuNode, err, len(agents.Items))
	}
	raw, err := cluster.Client.CoreV1().Pods("tessera-system").ProxyGet("http", agents.Items[0].Name, "9401", "/metrics", nil).DoRaw(ctx)
	if err != nil {
		t.Fatalf("the agent's /metrics: %v", err)
	}
	for _, want := range []string{
		`tessera_mig_instance_operations_total{operation="create",result="ok"} 1`,
		`tessera_mig_instance_operations_total{operation="destroy",result="ok"} 1`,
		`tessera_mig_instance_operations_total{operation="create",result="error"} 1`,
		`tessera_device_allocations_total{resource="nvidia.com/mig-1g.10gb",result="refused"} 1`,
		`tessera_device_allocations_total{resource="nvidia.com/mig-3g.40gb",result="allocated"} 1`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the agent's /metrics lacks %s", want)
		}
	}
}

// kubeletRestart restarts the GPU node's kubelet (as an upgrade or a crash
// would) under a running GPU pod: the pod keeps its container, the kubelet
// removes every socket in its device-plugin directory when it starts, and
// the agent must serve and register again for the next GPU pod to be
// admitted with its assigned GPUs.
func kubeletRestart(t *testing.T) {
	ns := "e2e-restart"
	createNamespace(t, ns)
	ctx := context.Background()
	const script = `echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"; sleep 3600`
	gpuPod := func(name string) *v1.Pod {
		p := busyboxPod(ns, name, "tessera-scheduler", script)
		p.Spec.Containers[0].Resources.Limits = v1.ResourceList{gpu.ResourceGPU: mustQuantity("2")}
		if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	held := gpuPod("held-across-restart")
	before := waitRunning(t, ns, held.Name, 2*time.Minute)
	heldSaw := visibleDevices(t, ns, held.Name)

	start := time.Now()
	if err := cluster.RestartKubelet(gpuNode); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := cluster.Client.CoreV1().Nodes().Get(ctx, gpuNode, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady {
				return c.Status == v1.ConditionTrue && c.LastHeartbeatTime.After(start), nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("node %s not Ready again after its kubelet restarted: %v", gpuNode, err)
	}
	ready := time.Since(start)

	next := gpuPod("after-restart")
	running := waitRunning(t, ns, next.Name, 2*time.Minute)
	a, err := gpu.UnmarshalAssignment(running.Annotations[gpu.AnnotationAssignment])
	if err != nil {
		t.Fatal(err)
	}
	saw := visibleDevices(t, ns, next.Name)
	if !sets.New(saw...).Equal(sets.New(a.UUIDs...)) || sets.New(saw...).HasAny(heldSaw...) {
		t.Fatalf("pod %s after the restart saw %v, assigned %v; the pod held across the restart has %v", next.Name, saw, a.UUIDs, heldSaw)
	}
	after, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, held.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Status.Phase != v1.PodRunning || len(after.Status.ContainerStatuses) == 0 ||
		after.Status.ContainerStatuses[0].ContainerID != before.Status.ContainerStatuses[0].ContainerID ||
		after.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Fatalf("pod %s did not keep its container across the kubelet restart: %s", held.Name, describePod(after))
	}
	t.Logf("kubelet of %s restarted, Ready again after %.1fs; %s kept its container; %s admitted with its assigned %s", gpuNode, ready.Seconds(), held.Name, next.Name, a.Describe())
	for _, name := range []string{held.Name, next.Name} {
		_ = cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	}
}

// visibleDevices reads NVIDIA_VISIBLE_DEVICES from the container's own
// output, through the API server and the kubelet as kubectl logs does.
func visibleDevices(t *testing.T, ns, pod string) []string {
	t.Helper()
	var line string
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		data, err := cluster.Client.CoreV1().Pods(ns).GetLogs(pod, &v1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return false, nil
		}
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "NVIDIA_VISIBLE_DEVICES="); ok {
				line = v
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s printed no NVIDIA_VISIBLE_DEVICES", pod)
	}
	if line == "" {
		return nil
	}
	return strings.Split(line, ",")
}

var nodeGPUTopologies = schema.GroupVersionResource{Group: "tessera.dev", Version: "v1alpha1", Resource: "nodegputopologies"}

func leaderFailover(t *testing.T) {
	ns := "e2e-failover"
	createNamespace(t, ns)
	ctx := context.Background()
	before := waitLeader(t, "", time.Minute)
	leaderPod := podOfHolder(before)

	first := busyboxPod(ns, "before-failover", "tessera-scheduler", "sleep 3600")
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, first, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	firstNode := waitBound(t, ns, first.Name, time.Minute)

	var survivor string
	for _, p := range schedulerPods(t) {
		if p.Name != leaderPod {
			survivor = p.Name
		}
	}
	// With every node cordoned, the deleted leader's replacement cannot
	// start: the surviving replica must take over, as when a leader's node
	// dies. The test's own pod tolerates the cordon.
	setUnschedulable(t, true)
	start := time.Now()
	if err := cluster.Client.CoreV1().Pods(tesseraNS).Delete(ctx, leaderPod, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	after := waitLeader(t, leaderPod, 90*time.Second)
	took := time.Since(start)
	if podOfHolder(after) != survivor {
		t.Fatalf("lease taken by %s, want the surviving replica %s", after, survivor)
	}

	second := busyboxPod(ns, "after-failover", "tessera-scheduler", "echo bound by the new leader")
	second.Spec.Tolerations = []v1.Toleration{{Key: v1.TaintNodeUnschedulable, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, second, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitTerminated(t, ns, second.Name, 2*time.Minute)
	if got.Status.Phase != v1.PodSucceeded {
		t.Fatalf("pod %s: %s", second.Name, describePod(got))
	}
	expectScheduledBy(t, ns, second.Name, "tessera-scheduler", after)

	// Nothing was bound twice: the pod bound before the failover is where
	// it was, and every pod has exactly one Scheduled event.
	p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, first.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName != firstNode {
		t.Fatalf("pod %s moved from %s to %s", first.Name, firstNode, p.Spec.NodeName)
	}
	for _, name := range []string{first.Name, second.Name} {
		if n := len(scheduledEvents(t, ns, name)); n != 1 {
			t.Fatalf("pod %s has %d Scheduled events, want 1", name, n)
		}
	}
	setUnschedulable(t, false)
	waitRollout(t, 3*time.Minute)
	t.Logf("leader %s deleted with every node cordoned; the other replica %s took the lease after %.1fs and bound %s", leaderPod, survivor, took.Seconds(), second.Name)
}

// leaderKilledMidGang kills the leading replica's process outright (SIGKILL
// through runc: no lease released) while a three-member pod group has only
// two members:
// nothing of the group may be bound before the new leader takes the lease
// (after the old lease expires) and the third member arrives; then all
// three bind and run.
// apiServerKilled SIGKILLs kube-apiserver while a pod group has 2 of its 3
// members and two GPU pods run, keeps it down for 15 s (past the leader's
// renew deadline, so the leader loses its lease and exits, as upstream's
// kube-scheduler does), and starts it again: the scheduler recovers from
// the API server alone, the group binds whole once its third member
// arrives, new GPU pods get free GPUs, and the audit finds every invariant
// intact.
func apiServerKilled(t *testing.T) {
	ns := "e2e-apiserver"
	createNamespace(t, ns)
	ctx := context.Background()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.ContentType = "application/json"
	pg := &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: ns}, Spec: schedv1alpha1.PodGroupSpec{MinMember: 3}}
	if _, err := versioned.NewForConfigOrDie(cfg).SchedulingV1alpha1().PodGroups(ns).Create(ctx, pg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	create := func(name string, gpus string, group string) {
		p := busyboxPod(ns, name, "tessera-scheduler", `echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"; sleep 3600`)
		if group != "" {
			p.Labels = map[string]string{schedv1alpha1.PodGroupLabel: group}
		}
		if gpus != "" {
			p.Spec.Containers[0].Resources.Limits = v1.ResourceList{gpu.ResourceGPU: mustQuantity(gpus)}
		}
		if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create("before-0", "2", "")
	create("before-1", "2", "")
	create("train-0", "", "train")
	create("train-1", "", "train")
	waitRunning(t, ns, "before-0", 2*time.Minute)
	waitRunning(t, ns, "before-1", 2*time.Minute)
	leader := waitLeader(t, "", time.Minute)

	cluster.KillAPIServer()
	down := time.Now()
	time.Sleep(15 * time.Second)
	if err := cluster.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver SIGKILLed with leader %s and 2 of 3 members waiting; started again after %.1fs", leader, time.Since(down).Seconds())
	back := time.Now()
	if n := boundCount(t, ns, "train-"); n != 0 {
		t.Fatalf("%d members of the 3-member group bound with 2 created", n)
	}
	create("train-2", "", "train")
	create("after-0", "2", "")
	for _, name := range []string{"train-0", "train-1", "train-2", "after-0"} {
		waitRunning(t, ns, name, 3*time.Minute)
	}
	now := waitLeader(t, "", time.Minute)
	held := sets.New(visibleDevices(t, ns, "before-0")...).Union(sets.New(visibleDevices(t, ns, "before-1")...))
	if after := visibleDevices(t, ns, "after-0"); len(after) != 2 || held.HasAny(after...) {
		t.Fatalf("after-0 got %v; the pods from before the outage hold %v", after, sets.List(held))
	}
	r, err := audit.Check(ctx, cluster.Config, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Violations) > 0 {
		t.Fatalf("audit after the outage: %s", strings.Join(r.Violations, "; "))
	}
	t.Logf("%.1fs after the API server came back: leader %s, the group bound whole and ran, after-0 got free GPUs; audit of %d pods (%d bound): no violation", time.Since(back).Seconds(), now, r.Pods, r.Bound)
	for _, name := range []string{"before-0", "before-1", "train-0", "train-1", "train-2", "after-0"} {
		_ = cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	}
}

// boundCount counts the pods of ns whose names start with prefix that are
// bound to a node.
func boundCount(t *testing.T, ns, prefix string) int {
	t.Helper()
	list, err := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range list.Items {
		if strings.HasPrefix(p.Name, prefix) && p.Spec.NodeName != "" {
			n++
		}
	}
	return n
}

func leaderKilledMidGang(t *testing.T) {
	ns := "e2e-gang-chaos"
	createNamespace(t, ns)
	ctx := context.Background()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.ContentType = "application/json"
	pg := &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Name: "train", Namespace: ns},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: 3},
	}
	if _, err := versioned.NewForConfigOrDie(cfg).SchedulingV1alpha1().PodGroups(ns).Create(ctx, pg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	member := func(i int) string {
		p := busyboxPod(ns, fmt.Sprintf("train-%d", i), "tessera-scheduler", "echo worker up; sleep 2")
		p.Labels = map[string]string{schedv1alpha1.PodGroupLabel: "train"}
		if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return p.Name
	}
	bound := func() int {
		list, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range list.Items {
			if p.Spec.NodeName != "" {
				n++
			}
		}
		return n
	}
	member(0)
	member(1)
	before := waitLeader(t, "", time.Minute)
	killed := podOfHolder(before)
	time.Sleep(2 * time.Second) // the two members reach the scheduler
	if n := bound(); n != 0 {
		t.Fatalf("%d members of a 3-member group bound with 2 created", n)
	}
	leaderPod, err := cluster.Client.CoreV1().Pods(tesseraNS).Get(ctx, killed, metav1.GetOptions{})
	if err != nil || len(leaderPod.Status.ContainerStatuses) == 0 {
		t.Fatalf("leader pod %s: %v", killed, err)
	}
	start := time.Now()
	if err := cluster.KillContainer(leaderPod.Spec.NodeName, leaderPod.Status.ContainerStatuses[0].ContainerID); err != nil {
		t.Fatal(err)
	}
	// Until a new leader holds the lease, and while the group is short,
	// nothing of it may be bound.
	var after string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if n := bound(); n != 0 {
			return false, fmt.Errorf("%d members bound during the failover with 2 of 3 created", n)
		}
		lease, err := cluster.Client.CoordinationV1().Leases(tesseraNS).Get(ctx, "tessera-scheduler", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			return false, nil
		}
		// The killed container restarts in the same pod, with a new
		// identity: any holder but the killed process will do.
		after = *lease.Spec.HolderIdentity
		return after != "" && after != before, nil
	})
	if err != nil {
		t.Fatalf("failover with a short gang: %v", err)
	}
	took := time.Since(start)
	member(2)
	for i := 0; i < 3; i++ {
		got := waitTerminated(t, ns, fmt.Sprintf("train-%d", i), 2*time.Minute)
		if got.Status.Phase != v1.PodSucceeded {
			t.Fatalf("member train-%d: %s", i, describePod(got))
		}
		expectScheduledBy(t, ns, got.Name, "tessera-scheduler", after)
	}
	waitRollout(t, 3*time.Minute)
	t.Logf("leader %s SIGKILLed with 2 of 3 members waiting; %s took the lease after %.1fs (the lease had to expire); nothing bound meanwhile; all 3 bound by it and ran", killed, after, took.Seconds())
}

func defaultScheduler(t *testing.T) {
	start := time.Now()
	apply(t, "default-scheduler")
	// The rollout's new pods are placed by the cluster's own default
	// scheduler, which is then stopped, as the manifest's comment tells
	// users to do.
	waitRollout(t, 3*time.Minute)
	cluster.StopDefaultScheduler()
	leader := waitLeader(t, "", time.Minute)
	t.Logf("default-scheduler rollout done in %.1fs; leader %s; stock default scheduler stopped", time.Since(start).Seconds(), leader)

	ns := "e2e-default"
	createNamespace(t, ns)
	ctx := context.Background()
	pod := busyboxPod(ns, "no-scheduler-name", "", "echo placed by tessera as the default scheduler")
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitTerminated(t, ns, pod.Name, 2*time.Minute)
	if got.Status.Phase != v1.PodSucceeded {
		t.Fatalf("pod %s: %s", pod.Name, describePod(got))
	}
	expectScheduledBy(t, ns, pod.Name, "default-scheduler", leader)

	// Tessera now places its own replicas: delete the one that does not
	// lead; the leader schedules its replacement.
	var follower string
	for _, p := range schedulerPods(t) {
		if p.Name != podOfHolder(leader) {
			follower = p.Name
		}
	}
	if follower == "" {
		t.Fatal("no second scheduler replica")
	}
	if err := cluster.Client.CoreV1().Pods(tesseraNS).Delete(ctx, follower, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	d := waitRollout(t, 3*time.Minute)
	for _, p := range schedulerPods(t) {
		if p.Name != podOfHolder(leader) {
			expectScheduledBy(t, tesseraNS, p.Name, "default-scheduler", leader)
		}
	}
	t.Logf("replica %s replaced; %d/%d available, the new one placed by the leader", follower, d.Status.AvailableReplicas, *d.Spec.Replicas)
}

// setUnschedulable cordons (or uncordons) every node.
func setUnschedulable(t *testing.T, on bool) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, on)
	for _, n := range cluster.NodeNames() {
		if _, err := cluster.Client.CoreV1().Nodes().Patch(context.Background(), n, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if on {
		t.Cleanup(func() {
			for _, n := range cluster.NodeNames() {
				_, _ = cluster.Client.CoreV1().Nodes().Patch(context.Background(), n, types.MergePatchType, []byte(`{"spec":{"unschedulable":false}}`), metav1.PatchOptions{})
			}
		})
	}
}

// waitRollout waits until the scheduler Deployment has all its replicas
// updated and available, and no old pod is left.
func waitRollout(t *testing.T, timeout time.Duration) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		got, err := cluster.Client.AppsV1().Deployments(tesseraNS).Get(ctx, "tessera-scheduler", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		d = got
		want := *got.Spec.Replicas
		s := got.Status
		if s.ObservedGeneration < got.Generation || s.UpdatedReplicas != want || s.AvailableReplicas != want || s.Replicas != want {
			return false, nil
		}
		// Old pods still terminating count in no status field: wait for
		// exactly want scheduler pods.
		return len(schedulerPods(t)) == int(want), nil
	})
	if err != nil {
		var pods []string
		for _, p := range schedulerPods(t) {
			pods = append(pods, p.Name+": "+describePod(&p))
		}
		t.Fatalf("scheduler Deployment not rolled out in %s: status %+v; pods: %s", timeout, d.Status, strings.Join(pods, " | "))
	}
	return d
}

func schedulerPods(t *testing.T) []v1.Pod {
	t.Helper()
	list, err := cluster.Client.CoreV1().Pods(tesseraNS).List(context.Background(), metav1.ListOptions{LabelSelector: tesseraApp})
	if err != nil {
		t.Fatal(err)
	}
	var pods []v1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			pods = append(pods, p)
		}
	}
	return pods
}

// waitLeader waits until the scheduler's Lease is held by a live pod other
// than notPod, and returns the holder identity (<pod name>_<uuid>).
func waitLeader(t *testing.T, notPod string, timeout time.Duration) string {
	t.Helper()
	var holder string
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		lease, err := cluster.Client.CoordinationV1().Leases(tesseraNS).Get(ctx, "tessera-scheduler", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return false, nil
		}
		holder = *lease.Spec.HolderIdentity
		pod := podOfHolder(holder)
		if pod == notPod {
			return false, nil
		}
		for _, p := range schedulerPods(t) {
			if p.Name == pod {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no scheduler pod other than %q holds the lease after %s (holder %q)", notPod, timeout, holder)
	}
	return holder
}

// podOfHolder is the pod name in a kube-scheduler lease holder identity,
// which is the host name (in a pod, the pod's name), "_" and a UUID.
func podOfHolder(holder string) string {
	name, _, _ := strings.Cut(holder, "_")
	return name
}

func waitBound(t *testing.T, ns, name string, timeout time.Duration) string {
	t.Helper()
	var node string
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		node = p.Spec.NodeName
		return node != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not bound in %s", ns, name, timeout)
	}
	return node
}

func scheduledEvents(t *testing.T, ns, pod string) []eventsv1.Event {
	t.Helper()
	list, err := cluster.Client.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.AndSelectors(fields.OneTermEqualSelector("regarding.name", pod), fields.OneTermEqualSelector("reason", "Scheduled")).String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// expectScheduledBy checks that the pod's Scheduled event was reported by
// the given profile of the scheduler instance holder (the leader): the
// events library names the instance <profile>-<host name>.
func expectScheduledBy(t *testing.T, ns, pod, profile, holder string) {
	t.Helper()
	var events []eventsv1.Event
	_ = wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		events = scheduledEvents(t, ns, pod)
		return len(events) > 0, nil
	})
	if len(events) != 1 {
		t.Fatalf("pod %s/%s: %d Scheduled events, want 1", ns, pod, len(events))
	}
	e := events[0]
	if e.ReportingController != profile || e.ReportingInstance != profile+"-"+podOfHolder(holder) {
		t.Fatalf("pod %s/%s was scheduled by %s/%s, want profile %s of %s: %s", ns, pod, e.ReportingController, e.ReportingInstance, profile, podOfHolder(holder), e.Note)
	}
}
