// Package charts holds Tessera's Helm chart, charts/tessera, and the tests
// that keep it equal to the kustomize bases in manifests/ (see
// chart_test.go). It has no code of its own.
package charts
