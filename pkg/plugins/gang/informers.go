package gang

import (
	"context"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
	"github.com/tessera-sched/tessera/pkg/kube"
)

// groupKeyOf is the pod's group, "" if it belongs to none.
func groupKeyOf(pod *v1.Pod) gangcore.GroupKey {
	name, ok := pod.Labels[PodGroupLabel]
	if !ok || name == "" {
		return ""
	}
	return gangcore.NewGroupKey(pod.Namespace, name)
}

func refOf(pod *v1.Pod) gangcore.PodRef {
	r := gangcore.PodRef{
		UID:     string(pod.UID),
		Name:    pod.Namespace + "/" + pod.Name,
		Group:   groupKeyOf(pod),
		Created: pod.CreationTimestamp.Time,
		Node:    pod.Spec.NodeName,
		Phase:   string(pod.Status.Phase),
	}
	if pod.Spec.Priority != nil {
		r.Priority = *pod.Spec.Priority
	}
	if r.Phase == "" {
		r.Phase = gangcore.PodPending
	}
	return r
}

// podAdded records a new member. Upstream only tells gated pods about new
// unscheduled pods when its GenericWorkload gate is on, so Gang wakes the
// group's waiting members itself once the group is complete, and refreshes
// their waiting reasons on the next tick otherwise.
func (pl *Gang) podAdded(logger klog.Logger, obj any) {
	pl.podChanged(obj)
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName != "" {
		return
	}
	key := groupKeyOf(pod)
	if key == "" {
		return
	}
	if d := pl.mgr.PreEnqueue(string(pod.UID), pl.now()); d.Allow {
		pl.activateGroup(logger, key)
		return
	}
	pl.mu.Lock()
	pl.dirty[key] = true
	pl.mu.Unlock()
}

func (pl *Gang) podChanged(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok || groupKeyOf(pod) == "" {
		return
	}
	ref := refOf(pod)
	pl.mgr.AddPod(ref)
	// The group's priority is its most important member's.
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if p, seen := pl.priority[ref.Group]; !seen || ref.Priority > p {
		pl.priority[ref.Group] = ref.Priority
		if g, ok := pl.groups[ref.Group]; ok {
			g.Priority = ref.Priority
			pl.groups[ref.Group] = g
			pl.mgr.SetGroup(g)
		}
	}
}

// watchFinishedMembers follows the group members that have finished. The
// scheduler's pod informer leaves Succeeded and Failed pods out (a pod that
// finishes looks deleted there), so without this a group whose members all
// succeed would fall back to Pending instead of Finished, and its
// succeeded and failed counts would stay 0 (scheduler-plugins' PodGroup
// controller counts them). Only finished pods that name a group are
// watched, so this costs nothing for other pods.
func (pl *Gang) watchFinishedMembers(ctx context.Context, cs kubernetes.Interface) error {
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = PodGroupLabel
		o.FieldSelector = "status.phase!=" + string(v1.PodPending) + ",status.phase!=" + string(v1.PodRunning)
	}))
	informer := factory.Core().V1().Pods().Informer()
	logger := klog.FromContext(ctx)
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pl.podChanged,
		UpdateFunc: func(_, obj any) { pl.podChanged(obj) },
		DeleteFunc: func(obj any) { pl.podDeleted(logger, obj) },
	}); err != nil {
		return err
	}
	pl.finished = informer.GetStore()
	factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		factory.Shutdown()
	}()
	return nil
}

// podGone handles a pod leaving the scheduler's pod informer: deleted, or
// finished (then the finished-members informer has it, or soon will, and
// the member stays).
func (pl *Gang) podGone(logger klog.Logger, obj any) {
	pod, ok := kube.PodOf(obj)
	if ok && pod.Spec.NodeName != "" {
		// A bound pod left, member or not: its room is free.
		pl.roomChanged(logger)
	}
	if ok && pl.finished != nil {
		if cur, exists, err := pl.finished.Get(pod); err == nil && exists && cur.(*v1.Pod).UID == pod.UID {
			return
		}
		if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
			// The last state seen is already final: it finished.
			pl.podChanged(pod)
			return
		}
	}
	pl.podDeleted(logger, obj)
}

// roomDelay is how long after a pod or node event the groups waiting for
// room are woken: the scheduler updates its cache from the same event in
// another handler, and a group checked before that would find the room
// still taken. Events within it are handled together.
const roomDelay = 200 * time.Millisecond

// roomChanged wakes, after roomDelay, the groups deferred for lack of
// room (gangcore.Manager.RoomChanged), bypassing the scheduler's per-pod
// back-off, so that a group whose room appeared tries within a cycle.
func (pl *Gang) roomChanged(logger klog.Logger) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.roomTimer != nil {
		return
	}
	pl.roomTimer = time.AfterFunc(roomDelay, func() {
		pl.mu.Lock()
		pl.roomTimer = nil
		pl.mu.Unlock()
		if pl.ctx != nil && pl.ctx.Err() != nil {
			return
		}
		for _, key := range pl.mgr.RoomChanged() {
			pl.activateGroup(logger, key)
		}
	})
}

// nodeChanged reports room when a node is added or may have grown: its
// allocatable, taints, schedulability or labels changed (not status
// heartbeats).
func (pl *Gang) nodeChanged(logger klog.Logger, oldObj, newObj any) {
	n, ok := newObj.(*v1.Node)
	if !ok {
		return
	}
	if o, ok := oldObj.(*v1.Node); ok && apiequality.Semantic.DeepEqual(o.Status.Allocatable, n.Status.Allocatable) &&
		apiequality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) && o.Spec.Unschedulable == n.Spec.Unschedulable &&
		apiequality.Semantic.DeepEqual(o.Labels, n.Labels) {
		return
	}
	pl.roomChanged(logger)
}

func (pl *Gang) podDeleted(logger klog.Logger, obj any) {
	pod, ok := kube.PodOf(obj)
	if !ok || groupKeyOf(pod) == "" {
		return
	}
	pl.rejectWaiting(pl.mgr.DeletePod(string(pod.UID)), "a member of the pod group was deleted")
	pl.activateBlocked(logger)
}

func (pl *Gang) groupChanged(obj any) {
	pg, ok := obj.(*schedv1alpha1.PodGroup)
	if !ok {
		return
	}
	g := groupOf(pg)
	pl.mu.Lock()
	g.Priority = pl.priority[g.Key]
	pl.groups[g.Key] = g
	pl.uids[g.Key] = pg.UID
	pl.mu.Unlock()
	pl.mgr.SetGroup(g)
	pl.activateGroup(klog.Background(), g.Key)
}

// groupOf is the group a PodGroup describes (its priority is the members'
// and is filled in by the caller).
func groupOf(pg *schedv1alpha1.PodGroup) gangcore.Group {
	g := gangcore.Group{
		Key:          gangcore.NewGroupKey(pg.Namespace, pg.Name),
		MinMember:    int(pg.Spec.MinMember),
		Created:      pg.CreationTimestamp.Time,
		MinResources: minResources(pg.Spec.MinResources),
	}
	if pg.Spec.ScheduleTimeoutSeconds != nil && *pg.Spec.ScheduleTimeoutSeconds > 0 {
		g.Timeout = time.Duration(*pg.Spec.ScheduleTimeoutSeconds) * time.Second
	}
	if k := pg.Annotations[AnnotationTopologyKey]; k != "" {
		g.Topology = gangcore.Topology{Key: k, Required: strings.EqualFold(pg.Annotations[AnnotationTopology], "required")}
	}
	return g
}

func (pl *Gang) groupDeleted(logger klog.Logger, obj any) {
	pg, ok := obj.(*schedv1alpha1.PodGroup)
	if !ok {
		if d, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
			pg, ok = d.Obj.(*schedv1alpha1.PodGroup)
		}
	}
	if !ok {
		return
	}
	key := gangcore.NewGroupKey(pg.Namespace, pg.Name)
	pl.mu.Lock()
	if uid, ok := pl.uids[key]; ok && uid != pg.UID {
		// A newer object of the same name is already known.
		pl.mu.Unlock()
		return
	}
	delete(pl.groups, key)
	delete(pl.uids, key)
	pl.mu.Unlock()
	pl.written.Delete(key)
	pl.seen.Delete(key)
	pl.rejectWaiting(pl.mgr.DeleteGroup(key), "the pod group was deleted")
	pl.activateBlocked(logger)
}
