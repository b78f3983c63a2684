// Package gang is the Gang scheduler plugin: pod-group co-scheduling that is
// all-or-nothing, bounded in time and free of deadlocks between groups.
//
// Pods join a scheduler-plugins PodGroup (scheduling.x-k8s.io/v1alpha1,
// minMember, minResources, scheduleTimeoutSeconds) with the label
// scheduling.x-k8s.io/pod-group. This package is the framework adapter; the
// group state machine lives in pkg/gang (see its package documentation for
// the protocol followed here, extension point by extension point), and it
// is rebuilt from PodGroups and pods alone after a restart.
package gang

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/preemption"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/crd"
	"github.com/tessera-sched/tessera/pkg/plugins/internal/profile"
)

// Name is the plugin's name in the registry and in scheduler configurations.
const Name = "Gang"

// PodGroupLabel is the label by which a pod joins a scheduler-plugins
// PodGroup in its namespace; manifests written for scheduler-plugins work
// unchanged.
const PodGroupLabel = schedv1alpha1.PodGroupLabel

// Annotations on a PodGroup asking that all members share one topology
// domain: the node label key (e.g. nvidia.com/gpu.clique, a rack or zone
// label) and whether that is "required" or "preferred" (default).
const (
	AnnotationTopologyKey = "tessera.dev/topology-key"
	AnnotationTopology    = "tessera.dev/topology"
)

// Gang holds group members back until the whole group can be placed.
type Gang struct {
	handle fwk.Handle
	args   *Args
	mgr    *gangcore.Manager
	pods   corelisters.PodLister
	// finished lists the group members that have finished (Succeeded or
	// Failed), which the scheduler's own pod informer leaves out.
	finished cache.Store
	client   versioned.Interface

	mu       sync.Mutex
	priority map[gangcore.GroupKey]int32 // highest member priority per group
	groups   map[gangcore.GroupKey]gangcore.Group
	// uids are the PodGroup objects' UIDs: a status is written to the
	// object it was derived for, never to one re-created under its name.
	uids map[gangcore.GroupKey]types.UID
	// roomTimer is set while a roomChanged wake-up is pending.
	roomTimer *time.Timer

	// written is what was last written to each PodGroup's status;
	// timedOut is the timeout count already exported as a metric.
	written sync.Map
	// groupsServed is set once the PodGroup CRD is served and watched.
	groupsServed atomic.Bool
	// seen is the status each PodGroup would get, as of the last tick,
	// while it differs from written (see updateStatuses).
	seen     sync.Map
	timedOut int64

	// ctx is the scheduler's; explained remembers the reason last written
	// on each held-back pod; dirty lists groups whose membership changed
	// since their waiting reasons were last refreshed.
	ctx       context.Context
	explained sync.Map
	dirty     map[gangcore.GroupKey]bool
	// waiting holds, per held-back pod, the reason to explain and since
	// when it waits; the tick writes it once the pod has waited
	// explainAfter (see noteWaiting).
	waiting map[types.UID]waitingPod

	// executor evicts the victims of a group's preemption; preempting
	// counts, per group, the victims whose eviction is still under way.
	executor   *preemption.Executor
	preempting map[gangcore.GroupKey]*atomic.Int64
	// evicted remembers when each victim was evicted, so that a plan made
	// before the scheduler's snapshot shows the deletion treats it as
	// leaving (see leaving).
	evicted map[types.UID]time.Time

	// hold is the last plan of the assembling group's pending members;
	// heldOff are the pods it turned away, activated when the slot is free
	// (see hold.go).
	hold    *holdPlan
	heldOff map[types.UID]*v1.Pod
}

var (
	_ fwk.PreEnqueuePlugin  = &Gang{}
	_ fwk.QueueSortPlugin   = &Gang{}
	_ fwk.PreFilterPlugin   = &Gang{}
	_ fwk.PermitPlugin      = &Gang{}
	_ fwk.ReservePlugin     = &Gang{}
	_ fwk.EnqueueExtensions = &Gang{}
	_ fwk.SignPlugin        = &Gang{}
	_ fwk.PostFilterPlugin  = &Gang{}
)

// New builds the plugin from validated args (invalid args fail start-up
// with an error naming the field) and starts watching PodGroups and pods
// until ctx ends.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := DecodeArgs(obj)
	if err != nil {
		return nil, err
	}
	pl := &Gang{
		handle: h,
		args:   args,
		mgr: gangcore.NewManager(gangcore.Config{
			DefaultTimeout:  time.Duration(*args.DefaultScheduleTimeoutSeconds) * time.Second,
			BackoffInitial:  time.Duration(*args.BackoffInitialSeconds) * time.Second,
			BackoffMax:      time.Duration(*args.BackoffMaxSeconds) * time.Second,
			NoBackoff:       *args.BackoffInitialSeconds == 0,
			StarvationAfter: time.Duration(*args.StarvationAfterSeconds) * time.Second,
		}),
		priority: map[gangcore.GroupKey]int32{},
		groups:   map[gangcore.GroupKey]gangcore.Group{},
		uids:     map[gangcore.GroupKey]types.UID{},
		dirty:    map[gangcore.GroupKey]bool{},
		waiting:  map[types.UID]waitingPod{},
		ctx:      ctx,

		preempting: map[gangcore.GroupKey]*atomic.Int64{},
		evicted:    map[types.UID]time.Time{},
		heldOff:    map[types.UID]*v1.Pod{},
	}
	logger := klog.FromContext(ctx)
	if f := h.SharedInformerFactory(); f != nil {
		pl.pods = f.Core().V1().Pods().Lister()
		pl.executor = preemption.NewExecutor(h, feature.Features{})
		if _, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { pl.podAdded(logger, obj) },
			UpdateFunc: func(_, obj any) { pl.podChanged(obj) },
			DeleteFunc: func(obj any) { pl.podGone(logger, obj) },
		}); err != nil {
			return nil, err
		}
		if _, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { pl.nodeChanged(logger, nil, obj) },
			UpdateFunc: func(oldObj, newObj any) { pl.nodeChanged(logger, oldObj, newObj) },
		}); err != nil {
			return nil, err
		}
		if cs := h.ClientSet(); cs != nil {
			if err := pl.watchFinishedMembers(ctx, cs); err != nil {
				return nil, err
			}
		}
	}
	if cfg := h.KubeConfig(); cfg != nil {
		client, err := versioned.NewForConfig(crd.JSONConfig(cfg))
		if err != nil {
			return nil, err
		}
		pl.client = client
		crd.WhenServed(ctx, cfg, schedv1alpha1.SchemeGroupVersion, "podgroups", "PodGroup", func(ctx context.Context) {
			pl.groupsServed.Store(true)
			factory := externalversions.NewSharedInformerFactory(client, 0)
			informer := factory.Scheduling().V1alpha1().PodGroups().Informer()
			if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
				AddFunc:    func(obj any) { pl.groupChanged(obj) },
				UpdateFunc: func(_, obj any) { pl.groupChanged(obj) },
				DeleteFunc: func(obj any) { pl.groupDeleted(logger, obj) },
			}); err != nil {
				logger.Error(err, "Cannot watch PodGroups")
				return
			}
			crd.RunInformer(ctx, factory, informer, "PodGroup")
		})
		go wait.UntilWithContext(ctx, pl.tick, time.Second)
	}
	return pl, nil
}

// Name returns the plugin name.
func (pl *Gang) Name() string { return Name }

func (pl *Gang) now() time.Time { return time.Now() }

// PreEnqueue keeps a member out of the active queue while its group cannot
// start: the PodGroup does not exist, fewer than minMember of its pods
// exist, it is backing off, or another group is assembling. The pod then
// costs no scheduling cycle, and the reason is shown on the pod.
func (pl *Gang) PreEnqueue(ctx context.Context, pod *v1.Pod) *fwk.Status {
	if groupKeyOf(pod) == "" {
		return nil
	}
	pl.mgr.AddPod(refOf(pod))
	if n := pl.preemptingFor(groupKeyOf(pod)); n > 0 {
		// evict activates the group when the victims are gone.
		reason := fmt.Sprintf("waiting for %d pods preempted for the pod group to be evicted", n)
		pl.noteWaiting(pod, reason)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reason)
	}
	d := pl.mgr.PreEnqueue(string(pod.UID), pl.now())
	if d.Allow {
		return nil
	}
	if d.RetryAfter > 0 {
		p := pod
		time.AfterFunc(d.RetryAfter, func() {
			pl.handle.Activate(klog.FromContext(ctx), map[string]*v1.Pod{p.Namespace + "/" + p.Name: p})
		})
	}
	pl.noteWaiting(pod, d.Reason)
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, d.Reason)
}

// Less orders the queue: higher priority first, then older groups (a pod
// without a group counts as a group of one), members of one group next to
// each other so that a group assembles in consecutive cycles.
func (pl *Gang) Less(a, b fwk.QueuedEntityInfo) bool {
	pa, aok := podOfEntity(a)
	pb, bok := podOfEntity(b)
	if !aok || !bok {
		pa1, pb1 := a.GetPriority(), b.GetPriority()
		return pa1 > pb1 || (pa1 == pb1 && a.GetTimestamp().Before(b.GetTimestamp()))
	}
	ra, rb := refOf(pa), refOf(pb)
	if ra.Created.IsZero() {
		ra.Created = a.GetTimestamp()
	}
	if rb.Created.IsZero() {
		rb.Created = b.GetTimestamp()
	}
	return pl.mgr.Less(ra, rb)
}

func podOfEntity(e fwk.QueuedEntityInfo) (*v1.Pod, bool) {
	pi, ok := e.(interface{ GetPodInfo() fwk.PodInfo })
	if !ok || pi.GetPodInfo() == nil {
		return nil, false
	}
	return pi.GetPodInfo().GetPod(), true
}

// PreFilter lets a member proceed only while its group holds the assembly
// slot (one group at a time reserves resources, so groups never deadlock).
// When the group takes the slot, the whole group is checked at once —
// device-level GPU fit and node resources — before anything is reserved.
// For a pod outside the group it plans the room held for the group's next
// members (see hold.go); other pods skip Gang's Filter.
func (pl *Gang) PreFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	key := groupKeyOf(pod)
	if key == "" {
		if h := pl.holdFor(pod, nodes); h != nil {
			cs.Write(holdKey, h)
			return nil, nil
		}
		return nil, fwk.NewStatus(fwk.Skip)
	}
	logger := klog.FromContext(ctx)
	now := pl.now()
	pl.rejectWaiting(pl.mgr.Expire(now), "the pod group did not assemble in time")
	a := pl.mgr.TryAssemble(string(pod.UID), now)
	if !a.OK {
		if a.Busy {
			// The pod is gated in PreEnqueue (naming the holder) from now
			// on; this message stays the same whoever holds the slot, so
			// the scheduler's condition update is skipped as unchanged.
			return nil, fwk.NewStatus(fwk.Unschedulable, busyReason)
		}
		return nil, fwk.NewStatus(fwk.Unschedulable, a.Reason)
	}
	c := &gangCycle{key: key, fit: fitNow}
	cs.Write(cycleKey, c)
	pending, _ := pl.mgr.Pending(key)
	cs.Write(profile.GroupStateKey, &profile.Group{Name: key.Name(), Others: max(len(pending)-1, 0)})
	if a.Started {
		reason, fit := pl.wholeGroupFits(key, nodes)
		c.fit = fit
		switch fit {
		case fitLater:
			// Busy, not hopeless: no growing back-off; pods leaving the
			// cluster (AssignedPod/Delete) wake the members.
			pl.rejectWaiting(pl.mgr.Defer(key, now, reason), reason)
			pl.activateBlocked(logger)
			return nil, fwk.NewStatus(fwk.Unschedulable, reason)
		case fitNever:
			pl.rejectWaiting(pl.mgr.Reject(key, now, reason), reason)
			pl.activateBlocked(logger)
			return nil, fwk.NewStatus(fwk.Unschedulable, reason)
		}
		pl.activateGroup(logger, key)
	}
	return nil, nil
}

// PreFilterExtensions returns nil.
func (pl *Gang) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Reserve does nothing: a member's devices are held by the other plugins'
// reservations until Permit releases the whole group.
func (pl *Gang) Reserve(context.Context, fwk.CycleState, *v1.Pod, string) *fwk.Status { return nil }

// Unreserve: a member failed after Reserve, so the whole group's
// reservations go (all or nothing) and the group backs off.
func (pl *Gang) Unreserve(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) {
	if groupKeyOf(pod) == "" {
		return
	}
	pl.rejectWaiting(pl.mgr.Unreserve(string(pod.UID), pl.now()), "another member of the pod group could not be placed")
	pl.activateBlocked(klog.FromContext(ctx))
}

// Permit holds a reserved member until minMember members of its group have
// a place, then lets all of them bind together; if the group's timeout
// passes first, every member is rejected and the group backs off.
func (pl *Gang) Permit(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) (*fwk.Status, time.Duration) {
	if groupKeyOf(pod) == "" {
		return nil, 0
	}
	r := pl.mgr.Permit(string(pod.UID), nodeName, pl.now())
	switch {
	case r.Allow:
		for _, uid := range r.AllowUIDs {
			if uid == string(pod.UID) {
				continue
			}
			if wp := pl.handle.GetWaitingPod(types.UID(uid)); wp != nil {
				wp.Allow(Name)
			}
		}
		if r.Assembled {
			timeToSchedule.Observe(r.TimeToSchedule.Seconds())
		}
		pl.activateBlocked(klog.FromContext(ctx))
		return nil, 0
	case r.Wait > 0:
		return fwk.NewStatus(fwk.Wait, r.Reason), r.Wait
	default:
		pl.rejectWaiting(r.RejectUIDs, r.Reason)
		pl.activateBlocked(klog.FromContext(ctx))
		return fwk.NewStatus(fwk.Unschedulable, r.Reason), 0
	}
}

// rejectWaiting rejects members waiting at Permit.
func (pl *Gang) rejectWaiting(uids []string, reason string) {
	for _, uid := range uids {
		if wp := pl.handle.GetWaitingPod(types.UID(uid)); wp != nil {
			wp.Reject(Name, reason)
		}
	}
}

// activateGroup moves the group's pending members to the active queue.
func (pl *Gang) activateGroup(logger klog.Logger, key gangcore.GroupKey) {
	if pl.pods == nil {
		return
	}
	pending, _ := pl.mgr.Pending(key)
	pods := map[string]*v1.Pod{}
	for _, ref := range pending {
		ns, name, _ := strings.Cut(ref.Name, "/")
		if p, err := pl.pods.Pods(ns).Get(name); err == nil {
			pods[ref.Name] = p
		}
	}
	if len(pods) > 0 {
		pl.handle.Activate(logger, pods)
	}
}

// activateBlocked lets the groups waiting for the assembly slot try again
// once it is free.
func (pl *Gang) activateBlocked(logger klog.Logger) {
	if _, _, held := pl.mgr.Holder(); held {
		return
	}
	pl.releaseHeld(logger)
	for _, key := range pl.mgr.Blocked() {
		pl.activateGroup(logger, key)
	}
}

// tick expires assemblies that ran out of time, wakes blocked groups, and
// keeps PodGroup statuses and the metrics current.
func (pl *Gang) tick(ctx context.Context) {
	logger := klog.FromContext(ctx)
	pl.rejectWaiting(pl.mgr.Expire(pl.now()), "the pod group did not assemble in time")
	pl.activateBlocked(logger)
	pl.refreshReasons()
	pl.explainWaiting(pl.now())
	pl.updateStatuses(ctx)
	pl.updateMetrics()
}

// EventsToRegister wakes waiting members when their group may now proceed:
// a member pod appears, a pod frees resources, or the PodGroup changes.
func (pl *Gang) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	events := []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.UnscheduledPod, ActionType: fwk.Add}, QueueingHintFn: pl.isSchedulableAfterPodAdded},
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}},
	}
	// The scheduler starts an informer for every custom resource named
	// here and does not schedule until it has synced: naming PodGroups
	// while their CRD is not installed would stop all scheduling. Without
	// the event, a PodGroup installed later still wakes its members
	// (groupChanged activates them).
	if pl.groupsServed.Load() {
		events = append(events, fwk.ClusterEventWithHint{Event: fwk.ClusterEvent{Resource: fwk.EventResource("podgroups.v1alpha1.scheduling.x-k8s.io"), ActionType: fwk.Add | fwk.Update}})
	}
	return events, nil
}

func (pl *Gang) isSchedulableAfterPodAdded(_ klog.Logger, pod *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	added, ok := newObj.(*v1.Pod)
	if !ok {
		return fwk.Queue, nil
	}
	if k := groupKeyOf(pod); k != "" && k == groupKeyOf(added) {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

// SignPod lets the scheduler batch identical pods (KEP-5598); members of
// one group sign alike, and differ from other groups' and plain pods.
func (pl *Gang) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: "tessera.dev/pod-group", Value: string(groupKeyOf(pod))}}, nil
}
