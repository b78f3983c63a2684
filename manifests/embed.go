// Package manifests embeds the shipped CRDs and scheduler configurations, so
// that the playground and tools run exactly what a cluster deployment
// applies, with no files beside the binary.
package manifests

import "embed"

// FS holds crds/ (the generated CRDs and the kustomization that patches in
// their validation rules) and the scheduler configurations of base/
// (secondary scheduler) and default-scheduler/ (replacement default
// scheduler).
//
//go:embed crds/*.yaml base/scheduler-config.yaml default-scheduler/scheduler-config.yaml
var FS embed.FS
