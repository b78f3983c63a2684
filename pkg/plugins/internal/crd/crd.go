// Package crd holds what Tessera's plugins need to talk to the custom
// resources they read (NodeGPUTopology, ElasticQuota, PodGroup) through the
// scheduler's connection.
package crd

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// JSONConfig returns a copy of cfg that speaks JSON. The scheduler's
// connection defaults to protobuf, which custom resources do not support.
func JSONConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.ContentType, c.AcceptContentTypes = "application/json", "application/json"
	return c
}

// Served reports whether the API server serves resource in gv, so that a
// plugin can run without a CRD that is not installed instead of failing
// (or logging errors) on every list and watch.
func Served(cfg *rest.Config, gv schema.GroupVersion, resource string) (bool, error) {
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, err
	}
	rl, err := disc.ServerResourcesForGroupVersion(gv.String())
	if err != nil {
		// Not found means not served; other errors are reported.
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	for _, r := range rl.APIResources {
		if r.Name == resource {
			return true, nil
		}
	}
	return false, nil
}
