package gang

import (
	"encoding/json"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
)

// waitingPod is a held-back pod whose reason is not written yet.
type waitingPod struct {
	pod    *v1.Pod
	reason string
	since  time.Time
}

// explainAfter is how long a pod waits before Gang writes why: members of
// a group that completes within it (the common case for a job controller
// creating its pods together) cost the API server no condition update and
// no Event at all, which `make bench` showed to matter.
const explainAfter = time.Second

// noteWaiting records that pod is held back for reason; the tick explains
// it (explain) once it has waited explainAfter.
func (pl *Gang) noteWaiting(pod *v1.Pod, reason string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	w, ok := pl.waiting[pod.UID]
	if !ok {
		w.since = pl.now()
	}
	w.pod, w.reason = pod, reason
	pl.waiting[pod.UID] = w
}

// explainWaiting writes the reasons of pods that have waited explainAfter
// and are still unbound.
func (pl *Gang) explainWaiting(now time.Time) {
	var due []waitingPod
	pl.mu.Lock()
	for uid, w := range pl.waiting {
		if now.Sub(w.since) >= explainAfter {
			due = append(due, w)
			delete(pl.waiting, uid)
		}
	}
	pl.mu.Unlock()
	for _, w := range due {
		if pl.pods != nil {
			if cur, err := pl.pods.Pods(w.pod.Namespace).Get(w.pod.Name); err != nil || cur.Spec.NodeName != "" || cur.UID != w.pod.UID {
				continue
			}
		}
		pl.explain(w.pod, w.reason)
	}
}

// busyReason is PreFilter's message for a member whose group waits for
// another group to finish assembling.
const busyReason = "waiting for another pod group to finish assembling (one group reserves resources at a time, so groups never deadlock)"

// ReasonWaitingForPodGroup is the PodScheduled condition reason of a pod
// that Gang holds back before it is scheduled.
const ReasonWaitingForPodGroup = "WaitingForPodGroup"

// explain tells a person why a pod is held back: the scheduler records no
// condition for pods that a PreEnqueue plugin keeps out of the queue, so
// Gang writes PodScheduled=False with the reason, and an Event, whenever
// the reason changes. It never blocks the queue.
func (pl *Gang) explain(pod *v1.Pod, reason string) {
	if last, ok := pl.explained.Load(pod.UID); ok && last.(string) == reason {
		return
	}
	pl.explained.Store(pod.UID, reason)
	client := pl.handle.ClientSet()
	if client == nil || pl.ctx == nil {
		return
	}
	go func() {
		// The pod may have been scheduled since: never mark a bound pod
		// unscheduled.
		if pl.pods != nil {
			if cur, err := pl.pods.Pods(pod.Namespace).Get(pod.Name); err != nil || cur.Spec.NodeName != "" {
				return
			}
		}
		patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []map[string]any{{
			"type": v1.PodScheduled, "status": v1.ConditionFalse, "reason": ReasonWaitingForPodGroup,
			"message": reason, "lastTransitionTime": metav1.Now(),
		}}}})
		if err != nil {
			return
		}
		_, err = client.CoreV1().Pods(pod.Namespace).Patch(pl.ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
		if err != nil {
			klog.FromContext(pl.ctx).V(2).Info("Could not record why the pod waits", "pod", klog.KObj(pod), "err", err)
		}
		if r := pl.handle.EventRecorder(); r != nil {
			r.Eventf(pod, nil, v1.EventTypeNormal, ReasonWaitingForPodGroup, "Scheduling", "%s", reason)
		}
	}()
}

// refreshReasons rewrites the waiting reason of the pending members of
// groups whose membership changed, so that every member says e.g. "7 of 8
// pods exist", not what was true when it arrived.
func (pl *Gang) refreshReasons() {
	pl.mu.Lock()
	dirty := pl.dirty
	pl.dirty = map[gangcore.GroupKey]bool{}
	pl.mu.Unlock()
	if pl.pods == nil {
		return
	}
	now := pl.now()
	for key := range dirty {
		pending, _ := pl.mgr.Pending(key)
		for _, ref := range pending {
			d := pl.mgr.PreEnqueue(ref.UID, now)
			if d.Allow {
				continue
			}
			ns, name, _ := strings.Cut(ref.Name, "/")
			if p, err := pl.pods.Pods(ns).Get(name); err == nil {
				pl.noteWaiting(p, d.Reason)
			}
		}
	}
}
