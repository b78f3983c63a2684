// Package manifests embeds the shipped CRDs and scheduler configurations, so
// that the playground and tools run exactly what a cluster deployment
// applies, with no files beside the binary.
package manifests

import "embed"

// FS holds every kustomization a cluster is deployed from: crds/ (the
// generated CRDs and the kustomization that patches in their validation
// rules), base/ (Tessera as a secondary scheduler), default-scheduler/
// (the replacement default scheduler), agent/ (tessera-agent) and
// agent-device-plugin/ (tessera-agent as the GPU device plugin too).
//
//go:embed crds/*.yaml base/*.yaml default-scheduler/*.yaml agent/*.yaml agent-device-plugin/*.yaml
var FS embed.FS
