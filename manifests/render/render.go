// Package render renders the embedded manifests with kustomize, exactly as
// `kubectl apply -k` would. It is separate from package manifests so that
// binaries that only need the raw files (the agent's cgo tests) do not link
// kustomize.
package render

import (
	"fmt"
	"io/fs"
	"path"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/tessera-sched/tessera/manifests"
)

// CRDs renders crds/ with kustomize, exactly as `kubectl apply -k
// manifests/crds` would, and returns the CRDs as multi-document YAML. The
// generated files alone lack the CEL rules that the kustomization adds.
func CRDs() ([]byte, error) {
	return Kustomization("crds", Overlay{})
}

// Image replaces an image name in the rendered objects, as a
// kustomization's images: field (or `kustomize edit set image`) does:
// the way a user points the manifests at their own registry.
type Image struct {
	// Name is the image name in the manifests, e.g.
	// ghcr.io/tessera-sched/tessera-scheduler.
	Name string
	// NewName and NewTag replace its name and tag.
	NewName, NewTag string
}

// Patch is a kustomize patch (strategic merge or JSON 6902) of the objects
// Target selects, as in a kustomization's patches: field.
type Patch struct {
	Target map[string]string
	Patch  string
}

// Overlay is what a user's own kustomization on top of one of ours would
// change: image names, and patches.
type Overlay struct {
	Images  []Image
	Patches []Patch
}

// Kustomization renders the embedded kustomization dir (crds, base,
// default-scheduler, agent, agent-device-plugin) exactly as `kubectl apply
// -k manifests/<dir>` would, through an overlay with o's images and patches
// if o is not empty, and returns the objects as multi-document YAML.
func Kustomization(dir string, o Overlay) ([]byte, error) {
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(manifests.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(manifests.FS, p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/manifests", p), data)
	})
	if err != nil {
		return nil, err
	}
	root := path.Join("/manifests", dir)
	if len(o.Images) > 0 || len(o.Patches) > 0 {
		overlay := map[string]any{
			"apiVersion": "kustomize.config.k8s.io/v1beta1",
			"kind":       "Kustomization",
			"resources":  []string{"../" + dir},
		}
		var list []map[string]string
		for _, img := range o.Images {
			list = append(list, map[string]string{"name": img.Name, "newName": img.NewName, "newTag": img.NewTag})
		}
		if len(list) > 0 {
			overlay["images"] = list
		}
		var patches []map[string]any
		for _, p := range o.Patches {
			patches = append(patches, map[string]any{"target": p.Target, "patch": p.Patch})
		}
		if len(patches) > 0 {
			overlay["patches"] = patches
		}
		data, err := yaml.Marshal(overlay)
		if err != nil {
			return nil, err
		}
		root = "/manifests/overlay-images"
		if err := mem.WriteFile(path.Join(root, "kustomization.yaml"), data); err != nil {
			return nil, err
		}
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, root)
	if err != nil {
		return nil, fmt.Errorf("rendering manifests/%s: %w", dir, err)
	}
	return res.AsYaml()
}
