package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// TestAgentAdmissionPolicy installs manifests/agent for real and checks, on
// the real API server, that the shipped ValidatingAdmissionPolicy lets the
// agent write only its own node's NodeGPUTopology. The agent is
// impersonated with the node-name claim its pod-bound token would carry.
func TestAgentAdmissionPolicy(t *testing.T) {
	installCRDs(t)
	applyObjects(t, kustomizeBuild(t, "agent"), false)

	agentOn := func(node string) dynamic.NamespaceableResourceInterface {
		cfg := rest.CopyConfig(cp.Config)
		cfg.Impersonate = rest.ImpersonationConfig{
			UserName: "system:serviceaccount:tessera-system:tessera-agent",
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:tessera-system", "system:authenticated"},
		}
		if node != "" {
			cfg.Impersonate.Extra = map[string][]string{"authentication.kubernetes.io/node-name": {node}}
		}
		return dynamic.NewForConfigOrDie(cfg).Resource(tesserav1alpha1.NodeGPUTopologyResource)
	}
	object := func(name string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": tesserav1alpha1.SchemeGroupVersion.String(),
			"kind":       "NodeGPUTopology",
			"metadata":   map[string]any{"name": name},
			"spec": map[string]any{"gpus": []any{
				map[string]any{"index": int64(0), "product": "NVIDIA-H100-80GB-HBM3"},
			}},
		}}
	}
	ctx := context.Background()
	t.Cleanup(func() {
		gvr := tesserav1alpha1.NodeGPUTopologyResource
		for _, n := range []string{"agent-node-a", "agent-node-b"} {
			_ = dynamic.NewForConfigOrDie(cp.Config).Resource(gvr).Delete(ctx, n, metav1.DeleteOptions{})
		}
	})

	// The policy is enforced once the API server has loaded it: wait until
	// writing another node's object is denied, with the policy's message.
	var denied error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, denied = agentOn("agent-node-a").Create(ctx, object("agent-node-b"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return denied != nil, nil
	})
	if err != nil {
		t.Fatalf("agent on agent-node-a could write agent-node-b's topology: the admission policy is not enforced")
	}
	if !strings.Contains(denied.Error(), "may only write the NodeGPUTopology named agent-node-a, not agent-node-b") {
		t.Errorf("denial does not explain itself: %v", denied)
	}

	// Its own node's object: allowed (RBAC and policy), create and update.
	own, err := agentOn("agent-node-a").Create(ctx, object("agent-node-a"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("agent could not create its own node's topology: %v", err)
	}
	if _, err := agentOn("agent-node-a").Update(ctx, own, metav1.UpdateOptions{}); err != nil {
		t.Errorf("agent could not update its own node's topology: %v", err)
	}
	// Credentials without the node claim: denied.
	if _, err := agentOn("").Create(ctx, object("agent-node-b"), metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "do not name its node") {
		t.Errorf("agent without a node claim: error %v", err)
	}
	// Other users (an admin) are not restricted by the policy.
	if _, err := dynamic.NewForConfigOrDie(cp.Config).Resource(tesserav1alpha1.NodeGPUTopologyResource).
		Create(ctx, object("agent-node-b"), metav1.CreateOptions{}); err != nil {
		t.Errorf("admin write denied: %v", err)
	}
}
