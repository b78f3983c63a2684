package explain

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// PodReport explains one pod.
type PodReport struct {
	Namespace     string `json:"namespace"`
	Name          string `json:"name"`
	Phase         string `json:"phase"`
	Node          string `json:"node,omitempty"`
	SchedulerName string `json:"schedulerName"`
	// Asks is the pod's GPU demand and CPU/memory request, in words.
	Asks string `json:"asks"`
	// Assigned is the device assignment the scheduler wrote, in words.
	Assigned string `json:"assigned,omitempty"`
	// Condition is the PodScheduled condition, when it is False.
	Condition *Condition `json:"condition,omitempty"`
	// NotOurs is set when no profile of the configuration schedules the
	// pod: the filters are not run.
	NotOurs string `json:"notOurs,omitempty"`
	// PreFilter is the verdict of the pod-wide checks (quota, gang, ...)
	// when they reject the pod; the per-node filters are then not run.
	PreFilter *Verdict `json:"preFilter,omitempty"`
	// Nodes is every node's Filter verdict, now.
	Nodes []NodeVerdict `json:"nodes,omitempty"`
	// Best are the feasible nodes by total score, best first (at most 5).
	Best []NodeScore `json:"best,omitempty"`
	// Quota is the pod's namespace's quota, when it has one.
	Quota *QuotaReport `json:"quota,omitempty"`
	// Group is the pod's pod group, when it is in one.
	Group  *GroupReport `json:"group,omitempty"`
	Events []Event      `json:"events,omitempty"`
	// Notes are caveats of this explanation.
	Notes []string `json:"notes,omitempty"`
}

// Condition is a PodScheduled=False condition.
type Condition struct {
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
}

// Verdict is a plugin's answer.
type Verdict struct {
	Plugin  string   `json:"plugin"`
	Code    string   `json:"code"`
	Reasons []string `json:"reasons"`
}

// NodeVerdict is one node's Filter answer and its free devices.
type NodeVerdict struct {
	Node string `json:"node"`
	Fits bool   `json:"fits"`
	// Refused is the first plugin that refused the node, as in the
	// scheduler (which stops at the first).
	Refused *Verdict `json:"refused,omitempty"`
	// FreeGPUs describes the node's free devices, "" for a node without
	// GPUs.
	FreeGPUs string `json:"freeGPUs,omitempty"`
}

// NodeScore is a feasible node's score, per plugin.
type NodeScore struct {
	Node    string           `json:"node"`
	Total   int64            `json:"total"`
	Plugins map[string]int64 `json:"plugins"`
}

// Pod explains the pod ns/name.
func Pod(ctx context.Context, o Options, ns, name string) (*PodReport, error) {
	profs, err := profiles(o.SchedulerConfig)
	if err != nil {
		return nil, err
	}
	probe, err := load(ctx, o, nil, nil)
	if err != nil {
		return nil, err
	}
	pod, err := probe.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	r := &PodReport{Namespace: ns, Name: name, Phase: string(pod.Status.Phase), Node: pod.Spec.NodeName, SchedulerName: pod.Spec.SchedulerName}
	r.Asks = asks(pod)
	if a, err := gpu.UnmarshalAssignment(pod.Annotations[gpu.AnnotationAssignment]); err == nil && !a.IsZero() {
		r.Assigned = a.Describe()
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
			r.Condition = &Condition{Reason: c.Reason, Message: c.Message, Since: c.LastTransitionTime.Time}
		}
	}
	prof := profs[pod.Spec.SchedulerName]
	if prof == nil {
		var names []string
		for n := range profs {
			names = append(names, n)
		}
		sort.Strings(names)
		r.NotOurs = fmt.Sprintf("no profile of the configuration is named %q (profiles: %s); pass --config with the cluster's scheduler configuration if Tessera runs it under that name", pod.Spec.SchedulerName, strings.Join(names, ", "))
	}
	c, err := load(ctx, o, prof, pod)
	if err != nil {
		return nil, err
	}
	defer c.close()
	r.Events = c.events(ctx, ns, string(pod.UID), 10)
	if len(pod.Spec.ResourceClaims) > 0 {
		r.Notes = append(r.Notes, "the pod has ResourceClaims: DRA devices are not part of this explanation")
	}
	if c.fw == nil {
		return r, nil
	}
	if pod.Spec.NodeName != "" {
		r.Notes = append(r.Notes, "the pod is bound: the verdicts below are for placing it again now, on the cluster without it")
	}
	r.Quota = quotaOf(c, pod)
	if g := pod.Labels[schedv1alpha1.PodGroupLabel]; g != "" {
		r.Group = groupOf(ctx, o, c, ns, g)
	}
	c.run(ctx, pod, r)
	return r, nil
}

// run runs the pod's PreFilter, every node's Filter and the feasible
// nodes' Score on the framework.
func (c *cluster) run(ctx context.Context, pod *v1.Pod, r *PodReport) {
	logger := klog.FromContext(ctx)
	state := framework.NewCycleState()
	pod = pod.DeepCopy()
	pod.Spec.NodeName = ""
	pfr, st, _ := c.fw.RunPreFilterPlugins(ctx, state, pod)
	if !st.IsSuccess() {
		r.PreFilter = verdict(st)
		return
	}
	byNode := map[string][]*v1.Pod{}
	for _, ni := range c.infos {
		for _, pi := range ni.GetPods() {
			byNode[ni.Node().Name] = append(byNode[ni.Node().Name], pi.GetPod())
		}
	}
	var feasible []fwk.NodeInfo
	for _, ni := range c.infos {
		n := ni.Node()
		v := NodeVerdict{Node: n.Name}
		if ng := plugins.NodeGPUs(c.fw, logger, n, byNode[n.Name]); ng.GPUs != nil {
			v.FreeGPUs = freeGPUs(ng)
		}
		switch {
		case pfr != nil && !pfr.AllNodes() && !pfr.NodeNames.Has(n.Name):
			v.Refused = &Verdict{Plugin: "PreFilter", Code: "Unschedulable", Reasons: []string{"not among the nodes the pod-wide checks allow"}}
		default:
			st := c.fw.RunFilterPlugins(ctx, state, pod, ni)
			if st.IsSuccess() {
				v.Fits = true
				feasible = append(feasible, ni)
			} else {
				v.Refused = verdict(st)
			}
		}
		r.Nodes = append(r.Nodes, v)
	}
	if len(feasible) == 0 {
		return
	}
	if st := c.fw.RunPreScorePlugins(ctx, state, pod, feasible); !st.IsSuccess() && !st.IsSkip() {
		r.Notes = append(r.Notes, "PreScore failed: "+st.Message())
		return
	}
	scores, st := c.fw.RunScorePlugins(ctx, state, pod, feasible)
	if !st.IsSuccess() {
		r.Notes = append(r.Notes, "Score failed: "+st.Message())
		return
	}
	sort.SliceStable(scores, func(i, j int) bool { return scores[i].TotalScore > scores[j].TotalScore })
	for _, s := range scores[:min(5, len(scores))] {
		ns := NodeScore{Node: s.Name, Total: s.TotalScore, Plugins: map[string]int64{}}
		for _, p := range s.Scores {
			ns.Plugins[p.Name] = p.Score
		}
		r.Best = append(r.Best, ns)
	}
}

func verdict(st *fwk.Status) *Verdict {
	reasons := st.Reasons()
	if len(reasons) == 0 {
		reasons = []string{st.Message()}
	}
	return &Verdict{Plugin: st.Plugin(), Code: st.Code().String(), Reasons: reasons}
}

// asks describes the pod's demand: its GPUs, MIG devices or share, and its
// CPU and memory.
func asks(pod *v1.Pod) string {
	var parts []string
	d, err := kube.ParseDemand(pod)
	switch {
	case err != nil:
		parts = append(parts, "an invalid GPU request ("+err.Error()+")")
	case d.WholeGPUs > 0:
		parts = append(parts, plural(d.WholeGPUs, "GPU"))
	}
	if err == nil {
		for _, m := range d.MIG {
			parts = append(parts, fmt.Sprintf("%d MIG %s", m.Count, m.Profile))
		}
		if d.ShareMilli > 0 {
			parts = append(parts, fmt.Sprintf("%dm of one GPU", d.ShareMilli))
		}
		if d.Locality == gpu.LocalityRequired {
			parts = append(parts, "all in one NVLink domain / NUMA node")
		}
		if d.Products != "" {
			parts = append(parts, "GPU products "+d.Products)
		}
	}
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	parts = append(parts, "cpu "+reqs.Cpu().String(), "memory "+reqs.Memory().String())
	return strings.Join(parts, ", ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// freeGPUs describes a node's free devices: whole GPUs by index, then the
// partly used GPUs (shares' free milli, MIG GPUs' free slices), runs of
// alike GPUs written once.
func freeGPUs(ng *kube.NodeGPUs) string {
	var whole []string
	type part struct {
		what string
		gpus []int
	}
	var partial []part
	add := func(what string, idx int) {
		if n := len(partial); n > 0 && partial[n-1].what == what {
			partial[n-1].gpus = append(partial[n-1].gpus, idx)
			return
		}
		partial = append(partial, part{what, []int{idx}})
	}
	all := ng.GPUs.GPUs()
	for _, g := range all {
		switch {
		case g.Use == gpu.UseFree && len(g.MIG) == 0 && g.FreeMilli == g.CapacityMilli:
			whole = append(whole, fmt.Sprint(g.GPU.Index))
		case g.Use == gpu.UseShared:
			add(fmt.Sprintf("%dm free beside %d shares", g.FreeMilli, g.Shares), g.GPU.Index)
		case len(g.MIG) > 0 || g.Use == gpu.UseMIG:
			add(fmt.Sprintf("MIG, %d/7 free", g.FreeMilli*7/max(g.CapacityMilli, 1)), g.GPU.Index)
		}
	}
	s := fmt.Sprintf("%d of %d whole", len(whole), len(all))
	if len(whole) > 0 {
		s += " (" + strings.Join(whole, ",") + ")"
	}
	for _, p := range partial {
		name := fmt.Sprintf("GPU %d", p.gpus[0])
		if n := len(p.gpus); n > 1 {
			name = fmt.Sprintf("GPUs %d-%d", p.gpus[0], p.gpus[n-1])
		}
		s += "; " + name + " " + p.what
	}
	if ng.Overbooked {
		s += "; OVERBOOKED by pods placed outside Tessera: nothing more goes here"
	}
	return s
}

// WriteText writes the report for a person.
func (r *PodReport) WriteText(w io.Writer) {
	where := "not bound"
	if r.Node != "" {
		where = "on " + r.Node
	}
	fmt.Fprintf(w, "Pod %s/%s: %s, %s (scheduler %s)\n", r.Namespace, r.Name, r.Phase, where, r.SchedulerName)
	fmt.Fprintf(w, "Asks for: %s\n", r.Asks)
	if r.Assigned != "" {
		fmt.Fprintf(w, "Assigned: %s\n", r.Assigned)
	}
	if r.Condition != nil {
		fmt.Fprintf(w, "Waiting since %s: %s: %s\n", r.Condition.Since.UTC().Format(time.RFC3339), r.Condition.Reason, r.Condition.Message)
	}
	if r.NotOurs != "" {
		fmt.Fprintf(w, "\nNot explained: %s\n", r.NotOurs)
	}
	if r.Quota != nil {
		fmt.Fprintln(w)
		r.Quota.writeText(w)
	}
	if r.Group != nil {
		fmt.Fprintln(w)
		r.Group.writeText(w)
	}
	if r.PreFilter != nil {
		fmt.Fprintf(w, "\nRefused before any node is tried, by %s: %s\n", r.PreFilter.Plugin, strings.Join(r.PreFilter.Reasons, "; "))
	}
	if len(r.Nodes) > 0 {
		fits := 0
		for _, n := range r.Nodes {
			if n.Fits {
				fits++
			}
		}
		fmt.Fprintf(w, "\nNodes (the scheduler's filters, run now): %d of %d fit\n", fits, len(r.Nodes))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  NODE\tVERDICT\tFREE GPUS")
		for _, n := range r.Nodes {
			v := "fits"
			if n.Refused != nil {
				v = fmt.Sprintf("%s: %s", n.Refused.Plugin, strings.Join(n.Refused.Reasons, "; "))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", n.Node, v, orDash(n.FreeGPUs))
		}
		tw.Flush()
	}
	if len(r.Best) > 0 {
		fmt.Fprintln(w, "\nBest nodes by score (what the scheduler would choose among now):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  NODE\tTOTAL\tBY PLUGIN")
		for _, b := range r.Best {
			var names []string
			for n := range b.Plugins {
				names = append(names, n)
			}
			sort.Strings(names)
			var parts []string
			for _, n := range names {
				parts = append(parts, fmt.Sprintf("%s %d", n, b.Plugins[n]))
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\n", b.Node, b.Total, strings.Join(parts, ", "))
		}
		tw.Flush()
	}
	writeEvents(w, r.Events)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// QuotaReport is a namespace's ElasticQuota arithmetic.
type QuotaReport struct {
	Namespace string   `json:"namespace"`
	Quotas    []string `json:"quotas"`
	Min       string   `json:"min,omitempty"`
	Max       string   `json:"max,omitempty"`
	Used      string   `json:"used"`
	Borrowed  string   `json:"borrowed,omitempty"`
	Problem   string   `json:"problem,omitempty"`
	// Charge is what the explained pod counts against the quota, and
	// Verdict whether it is admitted now (pending pods only).
	Charge  string `json:"charge,omitempty"`
	Verdict string `json:"verdict,omitempty"`
}

func quotaOf(c *cluster, pod *v1.Pod) *QuotaReport {
	t := plugins.QuotaTracker(c.fw)
	if t == nil || !t.Governs(pod.Namespace) {
		return nil
	}
	r := quotaReport(t, pod.Namespace)
	if r == nil {
		return nil
	}
	charge := kube.QuotaCharge(pod)
	r.Charge = amounts(charge)
	if pod.Spec.NodeName == "" {
		d := t.CheckAdmit(pod.Namespace, charge)
		switch {
		case d.Admit:
			r.Verdict = "admitted"
			if len(d.Borrow) > 0 {
				r.Verdict += ", borrowing " + amounts(d.Borrow)
			}
		case d.Reclaimable:
			r.Verdict = "admitted once borrowers are preempted (reclaim): " + d.Reason
		default:
			r.Verdict = "refused: " + d.Reason
		}
	}
	return r
}

func quotaReport(t *quota.Tracker, ns string) *QuotaReport {
	for _, s := range t.Snapshot() {
		if s.Namespace != ns {
			continue
		}
		return &QuotaReport{Namespace: ns, Quotas: s.Quotas, Min: amounts(s.Min), Max: amounts(s.Max), Used: amounts(s.Used), Borrowed: amounts(s.Borrowed), Problem: s.Problem}
	}
	return nil
}

func (q *QuotaReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "Quota of namespace %s (ElasticQuota %s):\n", q.Namespace, strings.Join(q.Quotas, ", "))
	if q.Problem != "" {
		fmt.Fprintf(w, "  misconfigured: %s\n", q.Problem)
	}
	fmt.Fprintf(w, "  min %s; max %s\n  used %s; borrowed above min %s\n", orDash(q.Min), orDash(q.Max), orDash(q.Used), orDash(q.Borrowed))
	if q.Charge != "" {
		fmt.Fprintf(w, "  this pod counts %s", q.Charge)
		if q.Verdict != "" {
			fmt.Fprintf(w, ": %s", q.Verdict)
		}
		fmt.Fprintln(w)
	}
}
