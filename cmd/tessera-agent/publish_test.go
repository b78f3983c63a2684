package main

import (
	"context"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// TestPublishOnce runs the publishing mode once against a fake API server
// and checks that the node's object is created with the discovered GPUs,
// under the node name from NODE_NAME, through the configured kubeconfig.
func TestPublishOnce(t *testing.T) {
	t.Setenv("NODE_NAME", "gpu-node-7")
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{tesserav1alpha1.NodeGPUTopologyResource: "NodeGPUTopologyList"})
	var kubeconfig string
	shutdowns := 0
	d := deps{
		newNVML: func(string) nvml.Interface {
			s := twoGPUServer(t)
			s.ShutdownFunc = func() nvml.Return { shutdowns++; return nvml.SUCCESS }
			return s
		},
		newClient: func(path string) (dynamic.Interface, error) {
			kubeconfig = path
			return client, nil
		},
		hostname: func() (string, error) { return "not-the-node-name", nil },
		now:      time.Now,
	}
	if _, err := execute(t, d, "--once", "--kubeconfig=/etc/kubeconfig"); err != nil {
		t.Fatalf("--once: %v", err)
	}
	if kubeconfig != "/etc/kubeconfig" {
		t.Errorf("client built from kubeconfig %q", kubeconfig)
	}
	if shutdowns != 1 {
		t.Errorf("NVML shut down %d times, want 1", shutdowns)
	}
	u, err := client.Resource(tesserav1alpha1.NodeGPUTopologyResource).Get(context.Background(), "gpu-node-7", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the node's NodeGPUTopology was not created: %v", err)
	}
	gpus, _, _ := unstructured.NestedSlice(u.Object, "spec", "gpus")
	if len(gpus) != 2 {
		t.Errorf("published %d GPUs, want 2", len(gpus))
	}
}
