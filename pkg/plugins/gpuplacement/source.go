package gpuplacement

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/crd"
)

// topologies resolves each node's GPU topology: the NodeGPUTopology the
// node's agent published when there is a valid one, else the topology
// derived from the node's labels and capacity. Results are cached per node
// until the node or its NodeGPUTopology changes.
type topologies struct {
	// informer watches NodeGPUTopology objects; nil while the API server does
	// not serve them (CRD not installed yet) or where there is no API server
	// (replay). It is set once, when the CRD is found.
	informer atomic.Pointer[cache.SharedIndexInformer]

	mu    sync.Mutex
	cache map[string]cachedTopology

	// epoch changes whenever a NodeGPUTopology is added, changed or
	// deleted, or the watch starts: the only ways a node's topology changes
	// without its NodeInfo generation changing.
	epoch atomic.Uint64
}

type cachedTopology struct {
	// node and obj are the objects the entry was built from: while the
	// scheduler hands out the same pointers, nothing needs comparing.
	node *v1.Node
	obj  *unstructured.Unstructured
	key  string
	topo *kube.NodeTopology
}

// newTopologies starts watching NodeGPUTopology objects when cfg's API
// server serves them, waits briefly for the initial list, and stops
// watching when ctx ends.
func newTopologies(ctx context.Context, cfg *rest.Config) *topologies {
	t := &topologies{cache: map[string]cachedTopology{}}
	if cfg == nil {
		return t
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Cannot watch NodeGPUTopology; using GPU Feature Discovery labels only")
		return t
	}
	crd.WhenServed(ctx, cfg, tesserav1alpha1.SchemeGroupVersion, tesserav1alpha1.NodeGPUTopologyResource.Resource, "NodeGPUTopology", func(ctx context.Context) {
		factory := dynamicinformer.NewDynamicSharedInformerFactory(client, 0)
		informer := factory.ForResource(tesserav1alpha1.NodeGPUTopologyResource).Informer()
		bump := func(any) { t.epoch.Add(1) }
		if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    bump,
			UpdateFunc: func(_, o any) { bump(o) },
			DeleteFunc: bump,
		}); err != nil {
			klog.FromContext(ctx).Error(err, "Cannot follow NodeGPUTopology changes")
		}
		// Until it syncs, nodes use their labels.
		crd.RunInformer(ctx, factory, informer, "NodeGPUTopology")
		t.informer.Store(&informer)
		t.epoch.Add(1)
	})
	return t
}

// forNode returns the node's topology (nil for a node without GPUs) and a
// key that changes whenever the topology may have changed.
func (t *topologies) forNode(logger klog.Logger, node *v1.Node) (*kube.NodeTopology, string) {
	var obj *unstructured.Unstructured
	if inf := t.informer.Load(); inf != nil {
		if o, exists, err := (*inf).GetStore().GetByKey(node.Name); err == nil && exists {
			obj, _ = o.(*unstructured.Unstructured)
		}
	}
	t.mu.Lock()
	c, ok := t.cache[node.Name]
	t.mu.Unlock()
	// Filter asks for every node for every pod: the common case is the
	// same node and topology objects as last time.
	if ok && c.node == node && c.obj == obj {
		return c.topo, c.key
	}
	key := kube.Fingerprint(node)
	if obj != nil {
		key = "ngt/" + string(obj.GetUID()) + "/" + obj.GetResourceVersion() + "/" + key
	}
	topo := c.topo
	if !ok || c.key != key {
		topo = t.resolve(logger, node, obj)
	}
	t.mu.Lock()
	t.cache[node.Name] = cachedTopology{node: node, obj: obj, key: key, topo: topo}
	t.mu.Unlock()
	return topo, key
}

func (t *topologies) resolve(logger klog.Logger, node *v1.Node, obj *unstructured.Unstructured) *kube.NodeTopology {
	if obj != nil {
		var ngt tesserav1alpha1.NodeGPUTopology
		err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &ngt)
		if err == nil {
			var topo gpu.Topology
			if topo, err = ngt.Spec.Topology(); err == nil && len(topo.GPUs) > 0 {
				return &kube.NodeTopology{Topo: topo, Source: "NodeGPUTopology"}
			}
		}
		logger.Error(err, "Ignoring invalid NodeGPUTopology; using the node's labels", "node", klog.KObj(node))
	}
	topo, ok := kube.TopologyFromLabels(node)
	if !ok {
		return nil
	}
	return &topo
}

func (t *topologies) forget(node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.cache, node)
}

// caughtUp waits, at most timeout, until the plugin's own watch holds the
// NodeGPUTopology named name at resourceVersion rv (absent, when deleted).
// The scheduler learns of a change through a watch of its own: a pod it
// retries for that change before this one has the change would fail again
// on the old topology and wait for the next event.
func (t *topologies) caughtUp(name, rv string, deleted bool, timeout time.Duration) bool {
	inf := t.informer.Load()
	if inf == nil {
		return false
	}
	deadline := time.Now().Add(timeout)
	for {
		o, exists, err := (*inf).GetStore().GetByKey(name)
		if err == nil {
			if deleted && !exists {
				return true
			}
			if u, ok := o.(*unstructured.Unstructured); ok && exists && !deleted && u.GetResourceVersion() == rv {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
