// Package elasticquota is the ElasticQuota scheduler plugin: per-namespace
// min/max quotas (scheduler-plugins' ElasticQuota API, so existing manifests
// work unchanged) with borrowing of idle quota, GPUs accounted as devices
// and as GPU-equivalents.
//
// This package is the framework adapter; the accounting lives in pkg/quota
// so that it is tested without a scheduler. Usage is derived from the pods
// the scheduler's informer sees (bound pods) and its own reservations, so a
// restarted scheduler recomputes it: nothing is trusted from memory alone.
package elasticquota

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	plfeature "k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/preemption"
	"k8s.io/kubernetes/pkg/scheduler/util"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"

	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/crd"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/profile"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// Name is the plugin's name in the registry and in scheduler configurations.
const Name = "ElasticQuota"

func init() {
	// The scheduler's event recorder resolves the objects it reports on
	// through client-go's scheme: without ElasticQuota there, Events about a
	// bad quota would be dropped.
	utilruntime.Must(schedv1alpha1.AddToScheme(scheme.Scheme))
}

const stateKey fwk.StateKey = Name

// ElasticQuota enforces namespace quotas at scheduling time.
type ElasticQuota struct {
	handle  fwk.Handle
	args    *Args
	tracker *quota.Tracker

	// capacity is each node's contribution to the cluster capacity that
	// unguaranteed borrowing draws from, kept current from node events so
	// that no scheduling cycle has to sum over all nodes.
	capMu    sync.Mutex
	capacity map[string]quota.Resources

	// Invalid quotas are reported with a Warning Event once the scheduler
	// runs: events recorded while the plugin is being built (the informer's
	// initial sync) are lost, because the event broadcaster starts later.
	evMu    sync.Mutex
	running bool
	// started mirrors running for the lock-free check on every PreFilter.
	started atomic.Bool
	invalid map[string]*invalidQuota

	// client writes status.used; written is what was last written per quota
	// object, uids the UID of the object known under each key, so that a
	// quota re-created under the same name gets its status too.
	client  versioned.Interface
	written sync.Map
	uids    sync.Map

	// Preemption (see preempt.go): upstream's evaluator and executor driven
	// by the quota and gang rules.
	preemptor *preemptor
	evaluator *preemption.Evaluator
	// evicted remembers when each victim was evicted: until the informer
	// shows its deletion, the snapshot still holds it, and a retry of the
	// preemptor must count it as leaving rather than evict it again.
	evictedMu sync.Mutex
	evicted   map[types.UID]time.Time
	executor  *preemption.Executor
}

type invalidQuota struct {
	eq       *schedv1alpha1.ElasticQuota
	err      error
	reported bool
}

var (
	_ fwk.PreFilterPlugin   = &ElasticQuota{}
	_ fwk.PostFilterPlugin  = &ElasticQuota{}
	_ fwk.PreEnqueuePlugin  = &ElasticQuota{}
	_ fwk.ReservePlugin     = &ElasticQuota{}
	_ fwk.EnqueueExtensions = &ElasticQuota{}
	_ fwk.SignPlugin        = &ElasticQuota{}
)

// New builds the plugin from validated args (invalid args fail scheduler
// start-up with an error naming the field), and starts watching
// ElasticQuotas and pods until ctx ends.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := DecodeArgs(obj)
	if err != nil {
		return nil, err
	}
	pl := &ElasticQuota{handle: h, args: args, tracker: quota.NewTracker(), capacity: map[string]quota.Resources{}, invalid: map[string]*invalidQuota{}}
	if f := h.SharedInformerFactory(); f != nil {
		fts := plfeature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate)
		pl.preemptor = &preemptor{pl: pl}
		pl.executor = preemption.NewExecutor(h, fts)
		pl.executor.PreemptPod = pl.countPreemption(pl.executor.PreemptPod)
		pl.evaluator = preemption.NewEvaluator(Name, h, pl.preemptor, pl.executor)
		// The cluster capacity only matters for lending what no quota
		// guarantees; without it (UnusedMin) nothing beyond the sum of the
		// mins is lent.
		if args.BorrowingLimit == UnusedMinAndUnguaranteed {
			if _, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
				AddFunc:    func(obj any) { pl.nodeChanged(obj, false) },
				UpdateFunc: func(_, obj any) { pl.nodeChanged(obj, false) },
				DeleteFunc: func(obj any) { pl.nodeChanged(obj, true) },
			}); err != nil {
				return nil, err
			}
		}
		if _, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    pl.podChanged,
			UpdateFunc: func(_, obj any) { pl.podChanged(obj) },
			DeleteFunc: pl.podDeleted,
		}); err != nil {
			return nil, err
		}
	}
	if err := pl.watchQuotas(ctx); err != nil {
		return nil, err
	}
	// Gang checks a whole group against its namespace's quota with the
	// same tracker, before any member reserves anything.
	profile.SetTracker(ctx, h, pl.tracker)
	return pl, nil
}

// watchQuotas feeds ElasticQuota objects into the tracker once the API
// server serves them (now, or whenever the CRD is installed).
func (pl *ElasticQuota) watchQuotas(ctx context.Context) error {
	cfg := pl.handle.KubeConfig()
	if cfg == nil {
		return nil
	}
	client, err := versioned.NewForConfig(crd.JSONConfig(cfg))
	if err != nil {
		return err
	}
	crd.WhenServed(ctx, cfg, schedv1alpha1.SchemeGroupVersion, "elasticquotas", "ElasticQuota", func(ctx context.Context) {
		pl.startQuotaInformer(ctx, client)
	})
	return nil
}

func (pl *ElasticQuota) startQuotaInformer(ctx context.Context, client versioned.Interface) {
	logger := klog.FromContext(ctx)
	factory := externalversions.NewSharedInformerFactory(client, 0)
	informer := factory.Scheduling().V1alpha1().ElasticQuotas().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pl.quotaChanged(logger, obj) },
		UpdateFunc: func(_, obj any) { pl.quotaChanged(logger, obj) },
		DeleteFunc: func(obj any) {
			if eq, ok := quotaOf(obj); ok {
				if uid, ok := pl.uids.Load(key(eq)); ok && uid != eq.UID {
					return // a newer object of the same name is known
				}
				pl.uids.Delete(key(eq))
				pl.written.Delete(key(eq))
				pl.tracker.DeleteQuota(key(eq))
				pl.evMu.Lock()
				delete(pl.invalid, key(eq))
				pl.evMu.Unlock()
			}
		},
	}); err != nil {
		logger.Error(err, "Cannot watch ElasticQuotas")
		return
	}
	crd.RunInformer(ctx, factory, informer, "ElasticQuota")
	pl.client = client // read only by syncStatus, started below
	go wait.UntilWithContext(ctx, pl.syncStatus, 5*time.Second)
}

func key(eq *schedv1alpha1.ElasticQuota) string { return eq.Namespace + "/" + eq.Name }

func quotaOf(obj any) (*schedv1alpha1.ElasticQuota, bool) {
	switch o := obj.(type) {
	case *schedv1alpha1.ElasticQuota:
		return o, true
	case cache.DeletedFinalStateUnknown:
		eq, ok := o.Obj.(*schedv1alpha1.ElasticQuota)
		return eq, ok
	}
	return nil, false
}

// quotaChanged records a quota. A bad one (min above max, negative values,
// a second quota in the namespace) gets a Warning Event naming the problem;
// the tracker then keeps the namespace's pods Pending with that reason.
func (pl *ElasticQuota) quotaChanged(logger klog.Logger, obj any) {
	eq, ok := quotaOf(obj)
	if !ok {
		return
	}
	pl.uids.Store(key(eq), eq.UID)
	err := pl.tracker.SetQuota(key(eq), quota.Quota{Namespace: eq.Namespace, Min: kube.Amounts(eq.Spec.Min), Max: kube.Amounts(eq.Spec.Max)})
	pl.evMu.Lock()
	defer pl.evMu.Unlock()
	if err == nil {
		delete(pl.invalid, key(eq))
		return
	}
	logger.Info("Invalid ElasticQuota", "elasticQuota", klog.KObj(eq), "err", err)
	pl.invalid[key(eq)] = &invalidQuota{eq: eq, err: err}
	if pl.running {
		pl.reportInvalidLocked()
	}
}

// reportInvalidLocked records a Warning Event on each invalid quota not yet
// reported. evMu must be held.
func (pl *ElasticQuota) reportInvalidLocked() {
	r := pl.handle.EventRecorder()
	for _, iq := range pl.invalid {
		if iq.reported || r == nil {
			continue
		}
		r.Eventf(iq.eq, nil, v1.EventTypeWarning, "InvalidElasticQuota", "Validating", "%v", iq.err)
		iq.reported = true
	}
}

// markRunning reports the invalid quotas found before the scheduler ran.
func (pl *ElasticQuota) markRunning() {
	if pl.started.Load() {
		return
	}
	pl.started.Store(true)
	pl.evMu.Lock()
	defer pl.evMu.Unlock()
	if !pl.running {
		pl.running = true
		pl.reportInvalidLocked()
	}
}

// nodeChanged updates the cluster capacity.
func (pl *ElasticQuota) nodeChanged(obj any, deleted bool) {
	node, ok := obj.(*v1.Node)
	if !ok {
		if d, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
			node, ok = d.Obj.(*v1.Node)
		}
		if !ok {
			return
		}
	}
	pl.capMu.Lock()
	defer pl.capMu.Unlock()
	if deleted {
		delete(pl.capacity, node.Name)
	} else {
		pl.capacity[node.Name] = kube.NodeCapacity(node)
	}
	total := quota.Resources{}
	for _, c := range pl.capacity {
		total = total.Add(c)
	}
	pl.tracker.SetClusterCapacity(total)
}

func (pl *ElasticQuota) podChanged(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed || pod.DeletionTimestamp != nil {
		// Unbound pods are charged when reserved; finished pods no longer
		// hold anything. A pod being deleted (a preemption victim, say)
		// returns its quota at once: its namespace must not be charged,
		// nor reclaimed from a second time, for room already being given
		// back. Physically it holds its devices until it is gone, which the
		// Filter plugins still see.
		if pod.Spec.NodeName != "" {
			pl.tracker.RemovePod(string(pod.UID))
		}
		return
	}
	pl.tracker.AddPod(kube.QuotaUsage(pod, pod.Spec.NodeName))
}

func (pl *ElasticQuota) podDeleted(obj any) {
	switch o := obj.(type) {
	case *v1.Pod:
		pl.tracker.RemovePod(string(o.UID))
	case cache.DeletedFinalStateUnknown:
		if p, ok := o.Obj.(*v1.Pod); ok {
			pl.tracker.RemovePod(string(p.UID))
		}
	}
}

// Name returns the plugin name.
func (pl *ElasticQuota) Name() string { return Name }

// preFilterState is the pod's charge and the quota's answer, computed once
// per cycle; PostFilter reads the answer to skip hopeless dry runs.
type preFilterState struct {
	usage    quota.PodUsage
	decision quota.Decision
}

func (s *preFilterState) Clone() fwk.StateData { return s }

// PreFilter admits the pod only if its namespace stays within max and
// either within min or borrowing capacity that is idle. Rejections name the
// namespace, resource and amounts.
func (pl *ElasticQuota) PreFilter(_ context.Context, cs fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	pl.markRunning()
	// Most namespaces have no quota: decide that before computing the
	// pod's charge.
	if d := pl.tracker.CheckAdmit(pod.Namespace, nil); !d.Governed {
		if pl.args.NamespacesWithoutQuota == Deny {
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
				fmt.Sprintf("namespace %q has no ElasticQuota and the scheduler requires one (namespacesWithoutQuota: Deny)", pod.Namespace))
		}
		return nil, fwk.NewStatus(fwk.Skip)
	}
	u := kube.QuotaUsage(pod, "")
	d := pl.tracker.CheckAdmit(pod.Namespace, u.Resources)
	cs.Write(stateKey, &preFilterState{usage: u, decision: d})
	if !d.Admit {
		if pl.tracker.Misconfigured(pod.Namespace) {
			// Nothing but fixing the quota object helps.
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, d.Reason)
		}
		// Unschedulable, not Unresolvable: reclaiming borrowed quota or
		// preempting lower-priority pods of the namespace may help, so
		// PostFilter runs (the framework still runs the other PreFilter
		// plugins, whose state the preemption dry run needs).
		return nil, fwk.NewStatus(fwk.Unschedulable, d.Reason)
	}
	return nil, nil
}

// PreFilterExtensions returns nil: quota does not depend on the node.
func (pl *ElasticQuota) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Reserve charges the pod to its namespace as soon as it has a node, so the
// next pod's check sees it (pods are checked one at a time, so max is never
// exceeded by pods in flight).
func (pl *ElasticQuota) Reserve(_ context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	d, err := cs.Read(stateKey)
	if err != nil {
		return nil // not governed
	}
	u := d.(*preFilterState).usage
	u.Node, u.Assumed = nodeName, true
	pl.tracker.AddPod(u)
	return nil
}

// Unreserve returns the charge of a pod that did not bind.
func (pl *ElasticQuota) Unreserve(_ context.Context, cs fwk.CycleState, pod *v1.Pod, _ string) {
	if _, err := cs.Read(stateKey); err == nil {
		pl.tracker.RemovePod(string(pod.UID))
	}
}

// EventsToRegister wakes pods waiting for quota when a pod leaves a
// namespace (its quota, or capacity it lent, frees up).
func (pl *ElasticQuota) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterPodDeleted},
	}, nil
}

func (pl *ElasticQuota) isSchedulableAfterPodDeleted(_ klog.Logger, pod *v1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	deleted, _, err := util.As[*v1.Pod](oldObj, nil)
	if err != nil {
		return fwk.Queue, err
	}
	if d := pl.tracker.CheckAdmit(deleted.Namespace, nil); d.Governed {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

// SignPod lets the scheduler batch identical pods (KEP-5598); quota
// decisions depend on the pod's namespace, which is the fragment.
func (pl *ElasticQuota) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: "tessera.dev/quota-namespace", Value: pod.Namespace}}, nil
}
