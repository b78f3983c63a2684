package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// kustomizeBuild renders a kustomization under manifests/ exactly as
// `kubectl apply -k` would.
func kustomizeBuild(t *testing.T, rel string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot(t), "manifests", rel))
	if err != nil {
		t.Fatalf("kustomize build manifests/%s: %v", rel, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range resMap.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

// applyObjects applies objs with the shared applier (namespaces and CRDs
// for real, the rest for real or as a server-side dry run).
func applyObjects(t *testing.T, objs []*unstructured.Unstructured, dryRun bool) {
	t.Helper()
	if err := localcluster.Apply(context.Background(), cp.Config, objs, dryRun); err != nil {
		t.Fatal(err)
	}
}

// namespaceAndCRDs returns the Namespace and CRDs of manifests/base.
func namespaceAndCRDs(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, o := range kustomizeBuild(t, "base") {
		if o.GetKind() == "Namespace" || o.GetKind() == "CustomResourceDefinition" {
			out = append(out, o)
		}
	}
	return out
}

// TestManifestsAcceptedByAPIServer renders every kustomization we ship and
// has the real API server validate every object (server-side dry run).
func TestManifestsAcceptedByAPIServer(t *testing.T) {
	scheduler := []string{"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "ConfigMap", "Deployment"}
	for dir, wantKinds := range map[string][]string{
		"base":                scheduler,
		"default-scheduler":   scheduler,
		"agent":               {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
		"agent-device-plugin": {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"},
	} {
		t.Run(dir, func(t *testing.T) {
			if strings.HasPrefix(dir, "agent") {
				// The agent installs into the scheduler's namespace, after
				// the CRDs.
				applyObjects(t, namespaceAndCRDs(t), false)
			}
			objs := kustomizeBuild(t, dir)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
			}
			for _, want := range wantKinds {
				if kinds[want] == 0 {
					t.Errorf("manifests/%s renders no %s (got %v)", dir, want, kinds)
				}
			}
			applyObjects(t, objs, true)
		})
	}
}

// TestShareSlotPolicy applies the admission policy manifests/agent-device-
// plugin ships and checks, on the real API server, that a share pod as
// users write it (only the annotation) gets one share slot in its first
// container, requests and limits, and nothing else; that pods without the
// annotation, and pods that already ask for a slot, are left alone; and
// that the scheduler then places the share pod on a node whose agent
// serves slots, with its share assigned.
func TestShareSlotPolicy(t *testing.T) {
	ctx := context.Background()
	var policy []*unstructured.Unstructured
	for _, o := range kustomizeBuild(t, "agent-device-plugin") {
		if strings.HasPrefix(o.GetKind(), "MutatingAdmissionPolicy") {
			policy = append(policy, o)
		}
	}
	if len(policy) != 2 {
		t.Fatalf("manifests/agent-device-plugin renders %d MutatingAdmissionPolicy objects, want the policy and its binding", len(policy))
	}
	applyObjects(t, policy, false)
	t.Cleanup(func() {
		// The policy is cluster-wide: later tests' share pods run on nodes
		// without an agent.
		admission := cp.Client.AdmissionregistrationV1()
		_ = admission.MutatingAdmissionPolicyBindings().Delete(ctx, "tessera-gpu-share-slot", metav1.DeleteOptions{})
		_ = admission.MutatingAdmissionPolicies().Delete(ctx, "tessera-gpu-share-slot", metav1.DeleteOptions{})
		_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			return !mutatesDryRun(t, "default"), nil
		})
	})
	ns := newNamespace(t)
	// Policies take effect when the API server's informer has them.
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		return mutatesDryRun(t, ns), nil
	}); err != nil {
		t.Fatalf("the share-slot policy never mutated a share pod: %v", err)
	}

	slot := v1.ResourceName(gpu.ResourceShareSlot)
	pod := sharePodSpec(ns, "quarter", "250")
	pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{Name: "sidecar", Image: "registry.k8s.io/pause:3.10"})
	got, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	main, side := got.Spec.Containers[0].Resources, got.Spec.Containers[1].Resources
	if main.Limits[slot] != resource.MustParse("1") || main.Requests[slot] != resource.MustParse("1") || main.Requests.Cpu().MilliValue() != 100 {
		t.Errorf("first container's resources %v: want one %s in limits and requests, the CPU request kept", main, slot)
	}
	if _, ok := side.Limits[slot]; ok {
		t.Errorf("second container got a slot too: %v", side)
	}
	plain, err := cp.Client.CoreV1().Pods(ns).Create(ctx, &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "no-share", Namespace: ns},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Spec.Containers[0].Resources.Limits) != 0 {
		t.Errorf("a pod without the share annotation was given %v", plain.Spec.Containers[0].Resources.Limits)
	}
	own := sharePodSpec(ns, "own-slot", "100")
	own.Spec.Containers = []v1.Container{
		{Name: "a", Image: "registry.k8s.io/pause:3.10"},
		{Name: "b", Image: "registry.k8s.io/pause:3.10", Resources: v1.ResourceRequirements{Limits: v1.ResourceList{slot: resource.MustParse("1")}}},
	}
	if got, err := cp.Client.CoreV1().Pods(ns).Create(ctx, own, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	} else if _, ok := got.Spec.Containers[0].Resources.Limits[slot]; ok {
		t.Errorf("a pod that asks for its slot in container b got another in container a")
	}

	// The scheduler places the share pod where an agent serves slots.
	createNodes(t, nodeSpec{name: "share-slot-node", cpu: "8", memory: "32Gi", gpus: 2, extra: v1.ResourceList{slot: resource.MustParse("200")}})
	startScheduler(t, cp.Config, schedulerConfig(t))
	bound := waitBound(t, ns, "quarter", 30*time.Second)
	if a := assignmentOf(t, bound); len(a.Shares) != 1 || a.Shares[0].Milli != 250 {
		t.Errorf("share pod bound to %s with assignment %+v, want one 250m share", bound.Spec.NodeName, a)
	}
}

func sharePodSpec(ns, name, milli string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{gpu.AnnotationShare: milli}},
		Spec: v1.PodSpec{
			SchedulerName: "tessera-scheduler",
			Containers: []v1.Container{{
				Name: "main", Image: "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m")}},
			}},
		},
	}
}

// mutatesDryRun says whether the share-slot policy now mutates a share pod
// (created as a server-side dry run, so nothing is left).
func mutatesDryRun(t *testing.T, ns string) bool {
	got, err := cp.Client.CoreV1().Pods(ns).Create(context.Background(), sharePodSpec(ns, "probe", "100"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Logf("dry-run share pod: %v", err)
		return false
	}
	_, ok := got.Spec.Containers[0].Resources.Limits[gpu.ResourceShareSlot]
	return ok
}
