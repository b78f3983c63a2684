// Package examples embeds the example cluster and workloads, so that
// `tessera playground` runs with no files beside the binary.
package examples

import "embed"

// Playground holds the default playground: cluster.yaml (simulated nodes)
// and workload.yaml (namespaces, quotas, a pod group and pods).
//
//go:embed playground/*.yaml
var Playground embed.FS

// PlaygroundReal holds the workload of the playground on real nodes
// (`tessera playground --real-nodes`): pods that run and print the GPUs
// they were assigned.
//
//go:embed playground-real/*.yaml
var PlaygroundReal embed.FS
