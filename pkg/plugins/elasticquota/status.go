package elasticquota

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/quota"
)

var (
	quotaUsed = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Subsystem: "tessera", Name: "quota_used",
		Help:           "Resources used by a namespace's pods, in the quota's units (CPU and tessera.dev/gpu in milli).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "resource"})
	quotaMin = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Subsystem: "tessera", Name: "quota_min",
		Help:           "A namespace's guaranteed quota (ElasticQuota spec.min).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "resource"})
	quotaMax = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Subsystem: "tessera", Name: "quota_max",
		Help:           "A namespace's quota limit (ElasticQuota spec.max).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "resource"})
	preemptionAttempts = metrics.NewCounter(&metrics.CounterOpts{
		Subsystem: "tessera", Name: "preemption_attempts_total",
		Help:           "PostFilter runs of Tessera's quota- and gang-aware preemption.",
		StabilityLevel: metrics.ALPHA,
	})
	preemptedPods = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem: "tessera", Name: "preempted_pods_total",
		Help:           "Pods evicted by ElasticQuota's per-pod preemption, by the preemptor's and the victim's namespace and kind: reclaim (borrowed quota taken back) or priority. Gang's whole-group preemption counts in tessera_gang_preempted_pods_total.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"preemptor_namespace", "victim_namespace", "kind"})
	registerOnce sync.Once
)

func init() {
	registerOnce.Do(func() { legacyregistry.MustRegister(quotaUsed, quotaMin, quotaMax, preemptionAttempts, preemptedPods) })
}

// toList converts pkg/quota amounts back to quantities for status.used.
func toList(r quota.Resources) v1.ResourceList {
	out := v1.ResourceList{}
	for name, v := range r {
		switch {
		case name == string(v1.ResourceCPU) || name == quota.ResourceGPUEquivalent:
			out[v1.ResourceName(name)] = *resource.NewMilliQuantity(v, resource.DecimalSI)
		case name == string(v1.ResourceMemory) || strings.HasSuffix(name, "storage"):
			out[v1.ResourceName(name)] = *resource.NewQuantity(v, resource.BinarySI)
		default:
			out[v1.ResourceName(name)] = *resource.NewQuantity(v, resource.DecimalSI)
		}
	}
	return out
}

// syncStatus writes each quota's status.used (what its namespace's pods
// use, recomputed from pods, never trusted from the object) when it
// changed, and updates the quota metrics.
func (pl *ElasticQuota) syncStatus(ctx context.Context) {
	for _, st := range pl.tracker.Snapshot() {
		for name, v := range st.Used {
			quotaUsed.WithLabelValues(st.Namespace, name).Set(float64(v))
		}
		for name, v := range st.Min {
			quotaMin.WithLabelValues(st.Namespace, name).Set(float64(v))
		}
		for name, v := range st.Max {
			quotaMax.WithLabelValues(st.Namespace, name).Set(float64(v))
		}
		if pl.client == nil || st.Problem != "" {
			continue
		}
		// Report only the resources the quota governs.
		used := quota.Resources{}
		for name := range st.Min {
			used[name] = st.Used[name]
		}
		for name := range st.Max {
			used[name] = st.Used[name]
		}
		patch, err := json.Marshal(map[string]any{"status": map[string]any{"used": toList(used)}})
		if err != nil {
			continue
		}
		for _, key := range st.Quotas {
			ns, name, _ := strings.Cut(key, "/")
			uid, _ := pl.uids.Load(key)
			version := fmt.Sprint(uid) + " " + string(patch)
			if last, ok := pl.written.Load(key); ok && last.(string) == version {
				continue
			}
			if _, err := pl.client.SchedulingV1alpha1().ElasticQuotas(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
				klog.FromContext(ctx).V(2).Info("Could not update ElasticQuota status", "elasticQuota", key, "err", err)
				continue
			}
			pl.written.Store(key, version)
		}
	}
}

// countPreempted counts one victim evicted for a pod of preemptorNamespace.
func countPreempted(preemptorNamespace, victimNamespace string) {
	preemptedPods.WithLabelValues(preemptorNamespace, victimNamespace, quota.PreemptionKind(preemptorNamespace, victimNamespace)).Inc()
}
