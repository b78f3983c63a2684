package gpuplacement

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
)

var (
	gpuAllocated = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Subsystem:      "tessera",
		Name:           "node_gpu_allocated",
		Help:           "GPU capacity held by pods on a node, in GPUs (MIG slices and shares count as fractions).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"node"})
	gpuFree = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Subsystem:      "tessera",
		Name:           "node_gpu_free",
		Help:           "Free GPU capacity on a node, in GPUs.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"node"})
	gpuStranded = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Subsystem:      "tessera",
		Name:           "node_gpu_stranded",
		Help:           "Free GPU capacity on a node that the recent demand mix is expected not to be able to use (fragmentation), in GPUs.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"node"})
	registerOnce sync.Once
)

// nodeMetrics publishes per-node GPU gauges, recomputed periodically from
// the scheduler's informers with the same derivation Filter uses.
type nodeMetrics struct{}

func newNodeMetrics() *nodeMetrics {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(gpuAllocated, gpuFree, gpuStranded)
	})
	return &nodeMetrics{}
}

func (m *nodeMetrics) forget(node string) {
	gpuAllocated.DeleteLabelValues(node)
	gpuFree.DeleteLabelValues(node)
	gpuStranded.DeleteLabelValues(node)
}

// run updates the gauges every 15 seconds until ctx ends.
func (m *nodeMetrics) run(ctx context.Context, pl *GPUPlacement, f informers.SharedInformerFactory) {
	nodes, pods := f.Core().V1().Nodes().Lister(), f.Core().V1().Pods().Lister()
	logger := klog.FromContext(ctx)
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		nodeList, err := nodes.List(labels.Everything())
		if err != nil {
			return
		}
		podList, err := pods.List(labels.Everything())
		if err != nil {
			return
		}
		byNode := map[string][]*v1.Pod{}
		for _, p := range podList {
			if p.Spec.NodeName != "" && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
				byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
			}
		}
		classes := pl.mix.Snapshot().Classes()
		for _, n := range nodeList {
			topo, _ := pl.topologies.forNode(logger, n)
			if topo == nil {
				continue
			}
			ns := kube.BuildNodeGPUs(logger, topo, byNode[n.Name], pl.ledger.get)
			gpuAllocated.WithLabelValues(n.Name).Set(float64(ns.GPUs.UsedMilli()) / 1000)
			gpuFree.WithLabelValues(n.Name).Set(float64(ns.GPUs.FreeMilli()) / 1000)
			stranded := 0.0
			if len(classes) > 0 {
				stranded = ns.GPUs.Fragmentation(gpu.NonGPU{CPUMilli: -1, MemoryMiB: -1, Product: n.Labels[gpu.LabelProduct]}, classes) / 1000
			}
			gpuStranded.WithLabelValues(n.Name).Set(stranded)
		}
	}, 15*time.Second)
}
