// Package render renders the embedded manifests with kustomize, exactly as
// `kubectl apply -k` would. It is separate from package manifests so that
// binaries that only need the raw files (the agent's cgo tests) do not link
// kustomize.
package render

import (
	"io/fs"
	"path"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/tessera-sched/tessera/manifests"
)

// CRDs renders crds/ with kustomize, exactly as `kubectl apply -k
// manifests/crds` would, and returns the CRDs as multi-document YAML. The
// generated files alone lack the CEL rules that the kustomization adds.
func CRDs() ([]byte, error) {
	mem := filesys.MakeFsInMemory()
	entries, err := fs.ReadDir(manifests.FS, "crds")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		data, err := fs.ReadFile(manifests.FS, path.Join("crds", e.Name()))
		if err != nil {
			return nil, err
		}
		if err := mem.WriteFile(path.Join("/crds", e.Name()), data); err != nil {
			return nil, err
		}
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/crds")
	if err != nil {
		return nil, err
	}
	return res.AsYaml()
}
