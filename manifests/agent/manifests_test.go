// Package agentmanifests holds only tests: they render this kustomization
// and check the objects, and evaluate the admission policy's CEL on sample
// requests. They live here rather than beside the agent's code because
// kustomize imports Go's plugin package, which links a binary with BIND_NOW:
// every symbol must resolve at start-up, and go-nvml's NVML functions only
// exist once the agent has loaded libnvidia-ml.so with dlopen.
package agentmanifests

import (
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// agentManifests renders manifests/agent as `kubectl apply -k` would and
// decodes each object into its typed API struct, keyed by kind.
func agentManifests(t *testing.T) map[string][]map[string]interface{} {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), ".")
	if err != nil {
		t.Fatalf("kustomize build manifests/agent: %v", err)
	}
	out := map[string][]map[string]interface{}{}
	for _, r := range resMap.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		out[r.GetKind()] = append(out[r.GetKind()], m)
	}
	return out
}

// decode converts one rendered object into a typed API struct, failing on
// fields the type does not have (a typo in the YAML).
func decode(t *testing.T, m map[string]interface{}, into interface{}) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(m, into, true); err != nil {
		t.Fatalf("decoding %v: %v", m["kind"], err)
	}
}

// TestManifests checks the rendered objects: the DaemonSet runs the agent
// unprivileged under the NVIDIA runtime on GPU nodes with its node name from
// the downward API, and RBAC lets its service account write
// NodeGPUTopologies and nothing else.
func TestManifests(t *testing.T) {
	objs := agentManifests(t)
	for kind, n := range map[string]int{"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "DaemonSet": 1, "ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1} {
		if len(objs[kind]) != n {
			t.Errorf("%d %s objects, want %d", len(objs[kind]), kind, n)
		}
	}
	if len(objs["Namespace"]) != 0 || len(objs["CustomResourceDefinition"]) != 0 {
		t.Errorf("manifests/agent must not create the namespace or the CRDs; base and crds do")
	}

	var ds appsv1.DaemonSet
	decode(t, objs["DaemonSet"][0], &ds)
	pod := ds.Spec.Template.Spec
	if pod.ServiceAccountName != "tessera-agent" || ds.Namespace != "tessera-system" {
		t.Errorf("DaemonSet runs as %s/%s", ds.Namespace, pod.ServiceAccountName)
	}
	if pod.RuntimeClassName == nil || *pod.RuntimeClassName != "nvidia" {
		t.Errorf("runtimeClassName %v, want nvidia", pod.RuntimeClassName)
	}
	if pod.NodeSelector["nvidia.com/gpu.present"] != "true" {
		t.Errorf("nodeSelector %v does not select GPU nodes", pod.NodeSelector)
	}
	c := pod.Containers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME is not spec.nodeName from the downward API: %+v", e)
	}
	if env["NVIDIA_VISIBLE_DEVICES"].Value != "all" || env["NVIDIA_DRIVER_CAPABILITIES"].Value != "utility" {
		t.Errorf("NVIDIA runtime environment %v", env)
	}
	if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container security context %+v, want unprivileged", c.SecurityContext)
	}
	if _, ok := c.Resources.Requests[corev1.ResourceName("nvidia.com/gpu")]; ok {
		t.Errorf("the agent must not take a GPU")
	}

	var role rbacv1.ClusterRole
	decode(t, objs["ClusterRole"][0], &role)
	if len(role.Rules) != 1 || strings.Join(role.Rules[0].APIGroups, ",") != "tessera.dev" || strings.Join(role.Rules[0].Resources, ",") != "nodegputopologies" {
		t.Errorf("ClusterRole rules %+v, want nodegputopologies only", role.Rules)
	}
	if got := strings.Join(role.Rules[0].Verbs, ","); got != "get,list,watch,create,update,patch" {
		t.Errorf("ClusterRole verbs %s", got)
	}
	var binding rbacv1.ClusterRoleBinding
	decode(t, objs["ClusterRoleBinding"][0], &binding)
	if s := binding.Subjects; len(s) != 1 || s[0].Kind != "ServiceAccount" || s[0].Name != "tessera-agent" || s[0].Namespace != "tessera-system" || binding.RoleRef.Name != "tessera-agent" {
		t.Errorf("ClusterRoleBinding %+v", binding)
	}
}

// TestAdmissionPolicy evaluates the ValidatingAdmissionPolicy's CEL
// expressions on sample requests: the agent may write its own node's
// NodeGPUTopology only, with a message that says why otherwise, and other
// users are not matched at all. The API server's own CEL environment has more
// functions than this one; the expressions use only standard CEL.
func TestAdmissionPolicy(t *testing.T) {
	objs := agentManifests(t)
	var policy admissionregistrationv1.ValidatingAdmissionPolicy
	decode(t, objs["ValidatingAdmissionPolicy"][0], &policy)
	var binding admissionregistrationv1.ValidatingAdmissionPolicyBinding
	decode(t, objs["ValidatingAdmissionPolicyBinding"][0], &binding)
	if binding.Spec.PolicyName != policy.Name || len(binding.Spec.ValidationActions) != 1 || binding.Spec.ValidationActions[0] != admissionregistrationv1.Deny {
		t.Fatalf("binding %+v does not deny with policy %s", binding.Spec, policy.Name)
	}
	if policy.Spec.FailurePolicy == nil || *policy.Spec.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("failurePolicy %v, want Fail", policy.Spec.FailurePolicy)
	}

	env, err := cel.NewEnv(
		cel.Variable("request", cel.DynType),
		cel.Variable("object", cel.DynType),
		cel.Variable("variables", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
	)
	if err != nil {
		t.Fatal(err)
	}
	eval := func(t *testing.T, expr string, vars map[string]interface{}) interface{} {
		t.Helper()
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("compiling %q: %v", expr, iss.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := prg.Eval(vars)
		if err != nil {
			t.Fatalf("evaluating %q: %v", expr, err)
		}
		return out.Value()
	}

	const agentSA = "system:serviceaccount:tessera-system:tessera-agent"
	tests := []struct {
		name        string
		username    string
		nodeClaim   []string
		object      string
		wantMatch   bool
		wantAllowed bool
		wantMessage string
	}{
		{name: "agent writes its own node", username: agentSA, nodeClaim: []string{"gpu-1"}, object: "gpu-1", wantMatch: true, wantAllowed: true},
		{name: "agent writes another node", username: agentSA, nodeClaim: []string{"gpu-1"}, object: "gpu-2", wantMatch: true,
			wantMessage: "tessera-agent on node gpu-1 may only write the NodeGPUTopology named gpu-1, not gpu-2"},
		{name: "agent token without a node claim", username: agentSA, object: "gpu-1", wantMatch: true, wantMessage: "do not name its node"},
		{name: "another user is not matched", username: "system:serviceaccount:kube-system:admin", nodeClaim: []string{"gpu-1"}, object: "gpu-2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			extra := map[string]interface{}{}
			if tc.nodeClaim != nil {
				extra["authentication.kubernetes.io/node-name"] = tc.nodeClaim
			}
			vars := map[string]interface{}{
				"request":   map[string]interface{}{"userInfo": map[string]interface{}{"username": tc.username, "extra": extra}},
				"object":    map[string]interface{}{"metadata": map[string]interface{}{"name": tc.object}},
				"variables": map[string]interface{}{},
			}
			matched := true
			for _, mc := range policy.Spec.MatchConditions {
				matched = matched && eval(t, mc.Expression, vars) == true
			}
			if matched != tc.wantMatch {
				t.Fatalf("policy applies: %v, want %v", matched, tc.wantMatch)
			}
			if !matched {
				return
			}
			computed := map[string]interface{}{}
			for _, v := range policy.Spec.Variables {
				computed[v.Name] = eval(t, v.Expression, vars)
			}
			vars["variables"] = computed
			allowed, message := true, ""
			for _, v := range policy.Spec.Validations {
				if eval(t, v.Expression, vars) == true {
					continue
				}
				allowed = false
				if v.Reason == nil || *v.Reason != "Forbidden" {
					t.Errorf("validation %q denies with reason %v, want Forbidden", v.Expression, v.Reason)
				}
				message = v.Message
				if v.MessageExpression != "" {
					message = eval(t, v.MessageExpression, vars).(string)
				}
				break
			}
			if allowed != tc.wantAllowed {
				t.Errorf("allowed %v, want %v", allowed, tc.wantAllowed)
			}
			if !strings.Contains(message, tc.wantMessage) {
				t.Errorf("message %q, want one containing %q", message, tc.wantMessage)
			}
		})
	}
}
