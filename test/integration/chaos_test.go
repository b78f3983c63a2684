package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/tessera-sched/tessera/pkg/audit"
)

// failBindings installs a ValidatingAdmissionPolicy that rejects the
// Bindings (pods/binding) of pods in namespaces labelled chaos=bindings
// whose names end in an odd digit, while the ConfigMap default/chaos says
// fail: "true" — a flaky API server or webhook, seen by the scheduler as
// failed binds. It returns the switch.
func failBindings(t *testing.T) func(on bool) {
	t.Helper()
	ctx := context.Background()
	admission := cp.Client.AdmissionregistrationV1()
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "chaos-fail-bindings"},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			ParamKind:     &admissionv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/binding"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: `!has(params.data) || !('fail' in params.data) || params.data.fail != 'true' || !object.metadata.name.matches('[13579]$')`,
				Message:    "chaos: binding rejected",
			}},
		},
	}
	if _, err := admission.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "chaos-fail-bindings"},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ParamRef:          &admissionv1.ParamRef{Name: "chaos", Namespace: "default", ParameterNotFoundAction: ptr.To(admissionv1.AllowAction)},
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"chaos": "bindings"},
			}},
		},
	}
	if _, err := admission.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "chaos", Namespace: "default"}, Data: map[string]string{"fail": "false"}}
	cm, err := cp.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admission.ValidatingAdmissionPolicyBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{})
		_ = admission.ValidatingAdmissionPolicies().Delete(ctx, policy.Name, metav1.DeleteOptions{})
		_ = cp.Client.CoreV1().ConfigMaps("default").Delete(ctx, "chaos", metav1.DeleteOptions{})
	})
	return func(on bool) {
		t.Helper()
		cm.Data["fail"] = fmt.Sprint(on)
		updated, err := cp.Client.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm = updated
	}
}

// chaosNamespace is a test namespace whose Bindings failBindings may fail.
func chaosNamespace(t *testing.T) string {
	t.Helper()
	ns := newNamespace(t)
	n, err := cp.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels["chaos"] = "bindings"
	if _, err := cp.Client.CoreV1().Namespaces().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// TestBindingFailures: while about half of all Bindings fail (a flaky API
// server or admission webhook), gangs, GPU pods under a quota and GPU
// shares keep every invariant the audit checks from the API server alone —
// no device given twice, no quota max exceeded, no pod group partly bound
// for long — at every check; and once Bindings succeed again every pod that
// fits is bound: the scheduler freed what each failed bind had reserved,
// and a gang whose member failed to bind completes.
func TestBindingFailures(t *testing.T) {
	installCRDs(t)
	ctx := context.Background()
	fail := failBindings(t)
	createNodes(t,
		nodeSpec{name: "chaos-node-1", cpu: "64", memory: "256Gi", gpus: 8},
		nodeSpec{name: "chaos-node-2", cpu: "64", memory: "256Gi", gpus: 8},
		nodeSpec{name: "chaos-node-3", cpu: "64", memory: "256Gi", gpus: 8})
	gangs, quota := chaosNamespace(t), chaosNamespace(t)
	createQuota(t, quota, gpus(4), gpus(10))

	// The policy takes effect when the API server's informer has it: probe
	// with a pod no scheduler picks up, bound by hand.
	fail(true)
	probe := createPod(t, gangs, podSpec{name: "probe-1", schedulerName: "nobody"})
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := cp.Client.CoreV1().Pods(gangs).Bind(ctx, &v1.Binding{ObjectMeta: metav1.ObjectMeta{Name: probe.Name}, Target: v1.ObjectReference{Kind: "Node", Name: "chaos-node-1"}}, metav1.CreateOptions{})
		return err != nil && strings.Contains(err.Error(), "chaos: binding rejected"), nil
	})
	if err != nil {
		t.Fatalf("the binding-failure policy never rejected a binding: %v", err)
	}

	startScheduler(t, cp.Config, schedulerConfig(t))
	for g := 0; g < 3; g++ {
		group := fmt.Sprintf("ddp-%d", g)
		createPodGroup(t, gangs, group, 4, 60, nil)
		for m := 0; m < 4; m++ {
			createMember(t, gangs, group, fmt.Sprintf("%s-m%d", group, m), 1)
		}
	}
	for i := 0; i < 4; i++ {
		createPod(t, gangs, podSpec{name: fmt.Sprintf("share-%d", i), schedulerName: "tessera-scheduler", annotations: map[string]string{"tessera.dev/gpu-milli": "300"}})
	}
	for i := 0; i < 8; i++ {
		createPod(t, quota, podSpec{name: fmt.Sprintf("train-%d", i), schedulerName: "tessera-scheduler", gpus: 2})
	}

	check := func(when string, grace time.Duration) *audit.Report {
		t.Helper()
		r, err := audit.Check(ctx, cp.Config, audit.Options{GangGrace: grace})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range r.Violations {
			t.Errorf("%s: %s", when, v)
		}
		return r
	}
	// Ten seconds of failures: the scheduler retries the refused pods with
	// back-off all along.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		check("while bindings fail", 30*time.Second)
		time.Sleep(time.Second)
	}
	pods, err := cp.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refused, bound := 0, 0
	for _, p := range pods.Items {
		if p.Namespace != gangs && p.Namespace != quota || p.Name == probe.Name {
			continue
		}
		if p.Spec.NodeName != "" {
			bound++
			if strings.IndexAny(p.Name[len(p.Name)-1:], "13579") == 0 {
				t.Errorf("pod %s/%s was bound while its Bindings were being refused", p.Namespace, p.Name)
			}
		} else if strings.IndexAny(p.Name[len(p.Name)-1:], "13579") == 0 {
			refused++
		}
	}
	t.Logf("after 10s of failing bindings: %d pods bound, %d waiting with refused bindings", bound, refused)

	fail(false)
	start := time.Now()
	for g := 0; g < 3; g++ {
		for m := 0; m < 4; m++ {
			waitBound(t, gangs, fmt.Sprintf("ddp-%d-m%d", g, m), 90*time.Second)
		}
	}
	for i := 0; i < 4; i++ {
		waitBound(t, gangs, fmt.Sprintf("share-%d", i), 60*time.Second)
	}
	var trained int
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		trained = boundIn(t, quota)
		return trained == 5, nil
	})
	if err != nil {
		t.Errorf("%d of the 8 two-GPU pods under a 10-GPU max bound after bindings recovered, want 5", trained)
	}
	r := check("after bindings recovered", 5*time.Second)
	t.Logf("bindings recovered: every gang and share bound, %d of 8 quota-limited pods, %.1fs; audit of %d pods (%d bound): %d violations", trained, time.Since(start).Seconds(), r.Pods, r.Bound, len(r.Violations))
}

// TestAuditFindsViolations plants each violation the audit looks for, by
// hand (pods created already bound, as no scheduler would bind them), and
// checks it is reported: the audit the chaos tests trust can fail.
func TestAuditFindsViolations(t *testing.T) {
	installCRDs(t)
	ctx := context.Background()
	createNodes(t, nodeSpec{name: "audit-node", cpu: "8", memory: "32Gi", gpus: 2})
	ns := newNamespace(t)
	createQuota(t, ns, nil, gpus(1))
	createPodGroup(t, ns, "half", 3, 60, nil)
	bound := func(name string, gpuCount int64, annotations, labels map[string]string) {
		t.Helper()
		p := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations, Labels: labels},
			Spec: v1.PodSpec{NodeName: "audit-node", Containers: []v1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Limits: gpus(gpuCount), Requests: gpus(gpuCount)}}}},
		}
		if _, err := cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gpu0 := map[string]string{"tessera.dev/gpu-assignment": `{"v":1,"gpus":[0]}`}
	bound("first", 1, gpu0, nil)
	bound("second", 1, gpu0, map[string]string{"scheduling.x-k8s.io/pod-group": "half"})
	r, err := audit.Check(ctx, cp.Config, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"node audit-node: pod " + ns + "/second over-allocates",
		"ElasticQuota " + ns + "/quota: bound pods use 2 of nvidia.com/gpu, over max 1",
		"PodGroup " + ns + "/half: 1 of minMember 3 bound",
	}
	for _, w := range want {
		found := false
		for _, v := range r.Violations {
			found = found || strings.Contains(v, w)
		}
		if !found {
			t.Errorf("the audit did not report %q; it found %v", w, r.Violations)
		}
	}
}
