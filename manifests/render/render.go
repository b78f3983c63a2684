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
	return Kustomization("crds", nil)
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

// Kustomization renders the embedded kustomization dir (crds, base,
// default-scheduler or agent) exactly as `kubectl apply -k manifests/<dir>`
// would, with images replaced through an overlay whose only content is an
// images: field, and returns the objects as multi-document YAML.
func Kustomization(dir string, images []Image) ([]byte, error) {
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
	if len(images) > 0 {
		overlay := map[string]any{
			"apiVersion": "kustomize.config.k8s.io/v1beta1",
			"kind":       "Kustomization",
			"resources":  []string{"../" + dir},
		}
		var list []map[string]string
		for _, img := range images {
			list = append(list, map[string]string{"name": img.Name, "newName": img.NewName, "newTag": img.NewTag})
		}
		overlay["images"] = list
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
