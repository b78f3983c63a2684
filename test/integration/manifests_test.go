package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

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
		"agent-device-plugin": {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
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
