package gang

import (
	"context"
	"encoding/json"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
	"github.com/tessera-sched/tessera/pkg/quota"
)

var (
	timeToSchedule = metrics.NewHistogram(&metrics.HistogramOpts{
		Subsystem:      "tessera",
		Name:           "gang_time_to_schedule_seconds",
		Help:           "Time from a pod group starting to assemble until all minMember members had a place.",
		Buckets:        metrics.ExponentialBuckets(0.01, 2, 15),
		StabilityLevel: metrics.ALPHA,
	})
	groupsWaiting = metrics.NewGauge(&metrics.GaugeOpts{
		Subsystem:      "tessera",
		Name:           "gangs_waiting",
		Help:           "Pod groups with pending members that are not yet placed.",
		StabilityLevel: metrics.ALPHA,
	})
	gangTimeouts = metrics.NewCounter(&metrics.CounterOpts{
		Subsystem:      "tessera",
		Name:           "gang_timeouts_total",
		Help:           "Pod group assemblies that ran out of time and released their reservations.",
		StabilityLevel: metrics.ALPHA,
	})
	preemptedPods = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      "tessera",
		Name:           "gang_preempted_pods_total",
		Help:           "Pods evicted by a pod group's whole-group preemption, by the group's and the victim's namespace and kind: reclaim (borrowed quota taken back) or priority.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"preemptor_namespace", "victim_namespace", "kind"})
	registerOnce sync.Once
)

func init() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(timeToSchedule, groupsWaiting, gangTimeouts, preemptedPods)
	})
}

// countPreempted counts one victim evicted for a group of preemptorNamespace.
func countPreempted(preemptorNamespace, victimNamespace string) {
	preemptedPods.WithLabelValues(preemptorNamespace, victimNamespace, quota.PreemptionKind(preemptorNamespace, victimNamespace)).Inc()
}

// updateStatuses writes each group's phase and member counts to its
// PodGroup status when they change and the change has held for a tick, so
// the status trails the truth by at most two seconds (the scheduler keeps
// it current; no second controller is needed).
func (pl *Gang) updateStatuses(ctx context.Context) {
	if pl.client == nil {
		return
	}
	pl.mu.Lock()
	uids := make(map[gangcore.GroupKey]types.UID, len(pl.groups))
	for k := range pl.groups {
		uids[k] = pl.uids[k]
	}
	pl.mu.Unlock()
	now := pl.now()
	for key, uid := range uids {
		st, ok := pl.mgr.Status(key, now)
		if !ok {
			continue
		}
		status := map[string]any{
			"phase":     st.Phase.V1alpha1(),
			"running":   st.Running,
			"succeeded": st.Succeeded,
			"failed":    st.Failed,
		}
		if !st.ScheduleStartTime.IsZero() {
			status["scheduleStartTime"] = metav1.NewTime(st.ScheduleStartTime)
		}
		patch, err := json.Marshal(map[string]any{"status": status})
		if err != nil {
			continue
		}
		// What was written is remembered per object, not per name: a
		// PodGroup re-created under the same name (as Jobs do) gets its
		// status even when it equals the old object's last one.
		version := string(uid) + " " + string(patch)
		if last, ok := pl.written.Load(key); ok && last.(string) == version {
			pl.seen.Delete(key)
			continue
		}
		// Debounce: write a status only once it has held for a tick, so a
		// group that assembles and binds within a second writes its final
		// state once instead of every step on the way (`make bench` showed
		// these writes to cost gang throughput on a busy API server).
		if prev, ok := pl.seen.Load(key); !ok || prev.(string) != version {
			pl.seen.Store(key, version)
			continue
		}
		pl.seen.Delete(key)
		_, err = pl.client.SchedulingV1alpha1().PodGroups(key.Namespace()).Patch(ctx, key.Name(), types.MergePatchType, patch, metav1.PatchOptions{}, "status")
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Could not update PodGroup status", "podGroup", key, "err", err)
			continue
		}
		pl.written.Store(key, version)
	}
}

func (pl *Gang) updateMetrics() {
	s := pl.mgr.Stats(pl.now())
	groupsWaiting.Set(float64(s.Waiting))
	if d := s.TimedOut - pl.timedOut; d > 0 {
		gangTimeouts.Add(float64(d))
	}
	pl.timedOut = s.TimedOut
}
