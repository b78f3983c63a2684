package perf

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/test/utils/client-go/ktesting"

	"github.com/tessera-sched/tessera/manifests/render"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// auditEnv names the file (JSON lines) that prepare's end-of-workload
// audit appends to; unset, the audit still fails a violating workload but
// writes nothing.
const auditEnv = "TESSERA_BENCH_AUDIT"

// gangLabel is scheduler-plugins' pod-group label, used by Tessera's Gang.
const gangLabel = "scheduling.x-k8s.io/pod-group"

// prepare runs once per workload, with the API server and scheduler up:
// it installs the shipped CRDs (rendered as `kubectl apply -k
// manifests/crds` would) and registers the end-of-workload audit.
func prepare(tCtx ktesting.TContext) error {
	data, err := render.CRDs()
	if err != nil {
		return err
	}
	objs, err := localcluster.DecodeYAML(data)
	if err != nil {
		return err
	}
	if err := localcluster.Apply(tCtx, tCtx.RESTConfig(), objs, false); err != nil {
		return err
	}
	name := tCtx.TB().Name()
	// Cleanups run last-registered first, so this one runs while the API
	// server is still up.
	tCtx.TB().Cleanup(func() { audit(tCtx, name) })
	return nil
}

// Audit is the correctness record of one workload, checked after it ran:
// Tessera's speed only counts if nothing was over-allocated and no gang was
// left partly bound.
type Audit struct {
	Workload string `json:"workload"`
	Pods     int    `json:"pods"`
	Bound    int    `json:"bound"`
	// PartialGangs counts pod groups with some but not all members bound.
	PartialGangs int `json:"partial_gangs"`
	// OverAllocated counts device violations: a GPU given whole twice,
	// shares above 1000 milli, overlapping MIG slots, or more GPUs
	// requested on a node than it has.
	OverAllocated int      `json:"over_allocated"`
	Examples      []string `json:"examples,omitempty"`
	// GangPodsPerSecond is the end-to-end rate of gang pods: bound gang
	// members / (first member created -> last member scheduled), which,
	// unlike scheduler_perf's throughput, includes the time a group waits
	// before anything binds. Timestamps have one-second resolution.
	GangPodsPerSecond float64 `json:"gang_pods_per_second,omitempty"`
	// Unbound counts the pods left unbound by kind (their name without the
	// generated suffix), with the last reason the scheduler gave.
	Unbound map[string]int    `json:"unbound,omitempty"`
	Reasons map[string]string `json:"unbound_reasons,omitempty"`
}

func audit(tCtx ktesting.TContext, workload string) {
	a, err := collectAudit(tCtx, workload)
	if err != nil {
		tCtx.Errorf("audit: %v", err)
		return
	}
	if a.PartialGangs > 0 || a.OverAllocated > 0 {
		tCtx.Errorf("audit of %s: %d partial gangs, %d over-allocations: %v", workload, a.PartialGangs, a.OverAllocated, a.Examples)
	}
	path := os.Getenv(auditEnv)
	if path == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tCtx.Errorf("audit: %v", err)
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tCtx.Errorf("audit: %v", err)
		return
	}
	defer f.Close()
	if err := json.NewEncoder(f).Encode(a); err != nil {
		tCtx.Errorf("audit: %v", err)
	}
}

func collectAudit(tCtx ktesting.TContext, workload string) (*Audit, error) {
	client := tCtx.Client()
	nodes, err := client.CoreV1().Nodes().List(tCtx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	pods, err := client.CoreV1().Pods(metav1.NamespaceAll).List(tCtx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	a := &Audit{Workload: workload, Pods: len(pods.Items)}
	onNode := map[string][]*v1.Pod{}
	type gangCount struct{ members, bound int }
	gangs := map[string]*gangCount{}
	var first, last time.Time
	gangBound := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != "" {
			a.Bound++
			onNode[p.Spec.NodeName] = append(onNode[p.Spec.NodeName], p)
		} else {
			kind := p.Namespace + "/" + p.GenerateName
			if kind == p.Namespace+"/" {
				kind = p.Namespace + "/" + p.Name
			}
			if a.Unbound == nil {
				a.Unbound, a.Reasons = map[string]int{}, map[string]string{}
			}
			a.Unbound[kind]++
			for _, c := range p.Status.Conditions {
				if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
					a.Reasons[kind] = c.Message
				}
			}
		}
		group := p.Labels[gangLabel]
		if group == "" && p.Spec.SchedulingGroup != nil && p.Spec.SchedulingGroup.PodGroupName != nil {
			group = *p.Spec.SchedulingGroup.PodGroupName
		}
		if group == "" {
			continue
		}
		key := p.Namespace + "/" + group
		if gangs[key] == nil {
			gangs[key] = &gangCount{}
		}
		gangs[key].members++
		if first.IsZero() || p.CreationTimestamp.Time.Before(first) {
			first = p.CreationTimestamp.Time
		}
		if p.Spec.NodeName != "" {
			gangs[key].bound++
			gangBound++
			for _, c := range p.Status.Conditions {
				if c.Type == v1.PodScheduled && c.Status == v1.ConditionTrue && c.LastTransitionTime.Time.After(last) {
					last = c.LastTransitionTime.Time
				}
			}
		}
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		v := kube.CheckNode(n, onNode[n.Name])
		a.OverAllocated += len(v)
		a.Examples = append(a.Examples, v...)
	}
	var partial []string
	for key, g := range gangs {
		if g.bound > 0 && g.bound < g.members {
			partial = append(partial, fmt.Sprintf("pod group %s: %d of %d members bound", key, g.bound, g.members))
		}
	}
	sort.Strings(partial)
	if gangBound > 0 && last.After(first) {
		a.GangPodsPerSecond = float64(gangBound) / last.Sub(first).Seconds()
	}
	a.PartialGangs = len(partial)
	a.Examples = append(a.Examples, partial...)
	if len(a.Examples) > 5 {
		a.Examples = a.Examples[:5]
	}
	return a, nil
}
