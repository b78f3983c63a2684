// Package elasticquota is the ElasticQuota scheduler plugin: per-namespace
// min/max quotas with borrowing of idle quota and reclaim by preempting
// borrowers, with GPUs accounted as devices and as GPU-equivalents.
//
// This package is the framework adapter; the accounting and victim selection
// live in pkg/quota so that they are tested without a scheduler.
package elasticquota

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
)

// Name is the plugin's name in the registry and in scheduler configurations.
const Name = "ElasticQuota"

// ElasticQuota enforces namespace quotas at scheduling time.
type ElasticQuota struct {
	handle fwk.Handle
	args   *Args
}

var (
	_ fwk.PreFilterPlugin = &ElasticQuota{}
	_ fwk.SignPlugin      = &ElasticQuota{}
)

// New builds the plugin from validated args; invalid args fail scheduler
// start-up with an error naming the field.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := DecodeArgs(obj)
	if err != nil {
		return nil, err
	}
	return &ElasticQuota{handle: h, args: args}, nil
}

// Name returns the plugin name.
func (pl *ElasticQuota) Name() string { return Name }

// PreFilter is where the quota admission check runs. Quota enforcement is not
// implemented yet (see the ElasticQuota issue): every pod is skipped, which is
// exactly the behaviour of a namespace without a quota under the Ungoverned
// policy.
func (pl *ElasticQuota) PreFilter(_ context.Context, _ fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	return nil, fwk.NewStatus(fwk.Skip)
}

// PreFilterExtensions returns nil: the plugin keeps no per-node state.
func (pl *ElasticQuota) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// SignPod lets the scheduler batch identical pods (KEP-5598); quota
// decisions depend on the pod's namespace, which is the fragment.
func (pl *ElasticQuota) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: "tessera.dev/quota-namespace", Value: pod.Namespace}}, nil
}
