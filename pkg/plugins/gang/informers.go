package gang

import (
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
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

func (pl *Gang) podDeleted(logger klog.Logger, obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		if d, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
			pod, ok = d.Obj.(*v1.Pod)
		}
	}
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
	pl.mu.Lock()
	g.Priority = pl.priority[g.Key]
	pl.groups[g.Key] = g
	pl.mu.Unlock()
	pl.mgr.SetGroup(g)
	pl.activateGroup(klog.Background(), g.Key)
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
	delete(pl.groups, key)
	pl.mu.Unlock()
	pl.rejectWaiting(pl.mgr.DeleteGroup(key), "the pod group was deleted")
	pl.activateBlocked(logger)
}
