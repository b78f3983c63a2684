// Package chaos injects faults into a Tessera cluster for the chaos tests:
// failing Bindings through an admission policy (here), and, in the soak
// test, killed scheduler replicas. The invariants are checked by
// pkg/audit.
package chaos

import (
	"context"
	"fmt"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// NamespaceLabel marks the namespaces whose Bindings BindingFaults may
// fail: chaos=bindings.
var NamespaceLabel = map[string]string{"chaos": "bindings"}

const faultName = "chaos-fail-bindings"

// BindingFaults fails, while on, the Bindings (pods/binding) of the pods in
// namespaces labelled NamespaceLabel whose names end in an odd digit —
// about half of them, the same ones every time — as a flaky API server or
// admission webhook would: the scheduler sees failed binds. It is a
// ValidatingAdmissionPolicy whose parameter, the ConfigMap default/chaos,
// switches it.
type BindingFaults struct {
	client kubernetes.Interface
	cm     *v1.ConfigMap
}

// InstallBindingFaults installs the policy (off) and waits until the API
// server enforces it, probing with a pod of namespace probeNS (which must
// carry NamespaceLabel) that no scheduler picks up, bound to node by hand.
func InstallBindingFaults(ctx context.Context, client kubernetes.Interface, probeNS, node string) (*BindingFaults, error) {
	admission := client.AdmissionregistrationV1()
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: faultName},
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
		return nil, err
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: faultName},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ParamRef:          &admissionv1.ParamRef{Name: "chaos", Namespace: "default", ParameterNotFoundAction: ptr.To(admissionv1.AllowAction)},
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources:    &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: NamespaceLabel}},
		},
	}
	if _, err := admission.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	cm, err := client.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "chaos", Namespace: "default"}, Data: map[string]string{"fail": "true"},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	f := &BindingFaults{client: client, cm: cm}
	probe, err := client.CoreV1().Pods(probeNS).Create(ctx, &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "chaos-probe-1", Namespace: probeNS},
		Spec:       v1.PodSpec{SchedulerName: "nobody", Containers: []v1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := client.CoreV1().Pods(probeNS).Bind(ctx, &v1.Binding{ObjectMeta: metav1.ObjectMeta{Name: probe.Name}, Target: v1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{})
		return err != nil && strings.Contains(err.Error(), "chaos: binding rejected"), nil
	})
	zero := int64(0)
	_ = client.CoreV1().Pods(probeNS).Delete(ctx, probe.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil {
		return nil, fmt.Errorf("the binding-failure policy never rejected a binding: %w", err)
	}
	return f, f.Set(ctx, false)
}

// Set turns the failures on or off.
func (f *BindingFaults) Set(ctx context.Context, on bool) error {
	f.cm.Data["fail"] = fmt.Sprint(on)
	updated, err := f.client.CoreV1().ConfigMaps("default").Update(ctx, f.cm, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	f.cm = updated
	return nil
}

// Remove deletes the policy, its binding and its switch.
func (f *BindingFaults) Remove(ctx context.Context) {
	admission := f.client.AdmissionregistrationV1()
	_ = admission.ValidatingAdmissionPolicyBindings().Delete(ctx, faultName, metav1.DeleteOptions{})
	_ = admission.ValidatingAdmissionPolicies().Delete(ctx, faultName, metav1.DeleteOptions{})
	_ = f.client.CoreV1().ConfigMaps("default").Delete(ctx, "chaos", metav1.DeleteOptions{})
}

// Refused says whether BindingFaults, while on, refuses the Binding of the
// pod named name.
func Refused(name string) bool {
	return name != "" && strings.ContainsAny(name[len(name)-1:], "13579")
}
