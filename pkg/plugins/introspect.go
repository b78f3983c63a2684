package plugins

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/profile"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// QuotaTracker returns the quota ledger ElasticQuota keeps for the
// framework h, nil when the profile has no ElasticQuota. Tools such as
// `tessera explain` build a framework from a profile and read the same
// arithmetic the scheduler decides by.
func QuotaTracker(h fwk.Handle) *quota.Tracker { return profile.Tracker(h) }

// NodeGPUs is a node's GPU state, with only the given pods on it, as the
// framework h's GPUPlacement sees it (from its NodeGPUTopology, or the
// node's labels without one).
func NodeGPUs(h fwk.Handle, logger klog.Logger, node *v1.Node, pods []*v1.Pod) *kube.NodeGPUs {
	return profile.NodeGPUs(h, logger, node, pods)
}
