// Package audit checks Tessera's invariants from the API server alone, as
// the chaos tests do after every fault and as an admin can after an
// incident: no device given twice on any node (whole GPUs, shares summing
// to at most 1000m per GPU, MIG slots legal and not overlapping), no
// ElasticQuota's max exceeded by the pods bound in its namespace, and no
// pod group left partly bound (some members bound, fewer than minMember
// ever bound).
//
// It reads only what any replica or a restarted scheduler reads (pods with
// their assignment and realized annotations, nodes, NodeGPUTopologies,
// ElasticQuotas, PodGroups), so a violation it finds is one the cluster
// really has, not one in some scheduler's memory.
package audit

import (
	"context"
	"fmt"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
)

// Report is what Check found.
type Report struct {
	// Pods and Bound count the pods that have not finished, and those of
	// them bound to a node.
	Pods, Bound int
	// Violations are the broken invariants, one line each, sorted.
	Violations []string
}

// Options tune Check.
type Options struct {
	// GangGrace is how long a pod group may stay partly bound (its members'
	// binds are separate API calls) before that counts as a violation;
	// default 30s.
	GangGrace time.Duration
	// Now is the time partial gangs are measured at; default time.Now().
	Now time.Time
}

// Check audits the cluster cfg points at.
func Check(ctx context.Context, cfg *rest.Config, opts Options) (*Report, error) {
	if opts.GangGrace == 0 {
		opts.GangGrace = 30 * time.Second
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	sched, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	podList, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	r := &Report{}
	var pods []*v1.Pod
	onNode := map[string][]*v1.Pod{}
	for i := range podList.Items {
		p := &podList.Items[i]
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed || p.DeletionTimestamp != nil {
			continue
		}
		pods = append(pods, p)
		r.Pods++
		if p.Spec.NodeName != "" {
			r.Bound++
			onNode[p.Spec.NodeName] = append(onNode[p.Spec.NodeName], p)
		}
	}

	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	topos := map[string]*gpu.Topology{}
	if list, err := dyn.Resource(tesserav1alpha1.NodeGPUTopologyResource).List(ctx, metav1.ListOptions{}); err == nil {
		for i := range list.Items {
			var ngt tesserav1alpha1.NodeGPUTopology
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(list.Items[i].Object, &ngt); err != nil {
				r.Violations = append(r.Violations, fmt.Sprintf("NodeGPUTopology %s: %v", list.Items[i].GetName(), err))
				continue
			}
			if t, err := ngt.Spec.Topology(); err == nil {
				topos[ngt.Name] = &t
			}
		}
	} else if !apierrors.IsNotFound(err) {
		return nil, err
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		r.Violations = append(r.Violations, kube.CheckNodeTopology(n, topos[n.Name], onNode[n.Name])...)
	}

	quotas, err := sched.SchedulingV1alpha1().ElasticQuotas(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	if err == nil {
		for _, q := range quotas.Items {
			max := kube.Amounts(q.Spec.Max)
			used := map[string]int64{}
			for _, p := range pods {
				if p.Namespace != q.Namespace || p.Spec.NodeName == "" {
					continue
				}
				for name, v := range kube.QuotaCharge(p) {
					used[name] += v
				}
			}
			for name, limit := range max {
				if used[name] > limit {
					r.Violations = append(r.Violations, fmt.Sprintf("ElasticQuota %s/%s: bound pods use %d of %s, over max %d", q.Namespace, q.Name, used[name], name, limit))
				}
			}
		}
	}

	groups, err := sched.SchedulingV1alpha1().PodGroups(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	if err == nil {
		for _, g := range groups.Items {
			// Members that finished or are being deleted were bound too:
			// a group whose members ran and ended is not partial.
			bound, members := 0, 0
			var first time.Time
			for i := range podList.Items {
				p := &podList.Items[i]
				if p.Namespace != g.Namespace || p.Labels[kube.LabelPodGroup] != g.Name {
					continue
				}
				members++
				if p.Spec.NodeName == "" {
					continue
				}
				bound++
				if t := boundAt(p); !t.IsZero() && (first.IsZero() || t.Before(first)) {
					first = t
				}
			}
			if bound == 0 || bound >= int(g.Spec.MinMember) {
				continue
			}
			if first.IsZero() || opts.Now.Sub(first) > opts.GangGrace {
				r.Violations = append(r.Violations, fmt.Sprintf("PodGroup %s/%s: %d of minMember %d bound (of %d members) for %s, over %s", g.Namespace, g.Name, bound, g.Spec.MinMember, members, opts.Now.Sub(first).Round(time.Second), opts.GangGrace))
			}
		}
	}
	sort.Strings(r.Violations)
	return r, nil
}

// boundAt is when the pod's PodScheduled condition turned true.
func boundAt(p *v1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}
