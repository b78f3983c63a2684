package explain

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// GroupReport is a pod group's state: the PodGroup's spec and status, and
// every member's.
type GroupReport struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Missing is set when the PodGroup object does not exist.
	Missing   bool   `json:"missing,omitempty"`
	MinMember int32  `json:"minMember"`
	Timeout   int32  `json:"scheduleTimeoutSeconds,omitempty"`
	Topology  string `json:"topology,omitempty"`
	Phase     string `json:"phase,omitempty"`
	// Bound counts members with a node, Pending those without.
	Bound   int       `json:"bound"`
	Pending int       `json:"pending"`
	Started time.Time `json:"scheduleStartTime,omitempty"`
	Members []Member  `json:"members"`
}

// Member is one pod of a group.
type Member struct {
	Name  string `json:"name"`
	Phase string `json:"phase"`
	Node  string `json:"node,omitempty"`
	// Waiting is the member's PodScheduled=False message.
	Waiting string `json:"waiting,omitempty"`
}

func groupClient(cfg *rest.Config) (versioned.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.ContentType = "application/json"
	c.AcceptContentTypes = "application/json"
	return versioned.NewForConfig(c)
}

func groupOf(ctx context.Context, o Options, c *cluster, ns, name string) *GroupReport {
	g := &GroupReport{Namespace: ns, Name: name}
	client, err := groupClient(ReadOnly(o.Config))
	if err == nil {
		pg, err := client.SchedulingV1alpha1().PodGroups(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			g.MinMember = pg.Spec.MinMember
			if pg.Spec.ScheduleTimeoutSeconds != nil {
				g.Timeout = *pg.Spec.ScheduleTimeoutSeconds
			}
			if k := pg.Annotations["tessera.dev/topology-key"]; k != "" {
				mode := pg.Annotations["tessera.dev/topology"]
				if mode == "" {
					mode = "preferred"
				}
				g.Topology = fmt.Sprintf("one %s domain (%s)", k, mode)
			}
			g.Phase = string(pg.Status.Phase)
			if pg.Status.ScheduleStartTime.Time.Unix() > 0 {
				g.Started = pg.Status.ScheduleStartTime.Time
			}
		default:
			g.Missing = true
		}
	}
	for _, p := range c.pods {
		if p.Namespace != ns || p.Labels[schedv1alpha1.PodGroupLabel] != name {
			continue
		}
		m := Member{Name: p.Name, Phase: string(p.Status.Phase), Node: p.Spec.NodeName}
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.PodScheduled && cond.Status == v1.ConditionFalse {
				m.Waiting = cond.Message
			}
		}
		if p.Spec.NodeName != "" {
			g.Bound++
		} else if !terminated(p) {
			g.Pending++
		}
		g.Members = append(g.Members, m)
	}
	sort.Slice(g.Members, func(i, j int) bool { return g.Members[i].Name < g.Members[j].Name })
	return g
}

// PodGroup explains the scheduler-plugins PodGroup ns/name.
func PodGroup(ctx context.Context, o Options, ns, name string) (*GroupReport, error) {
	c, err := load(ctx, o, nil, nil)
	if err != nil {
		return nil, err
	}
	g := groupOf(ctx, o, c, ns, name)
	if g.Missing && len(g.Members) == 0 {
		return nil, fmt.Errorf("pod group %s/%s: no PodGroup object and no pod labelled %s=%s", ns, name, schedv1alpha1.PodGroupLabel, name)
	}
	return g, nil
}

// WriteText writes the report for a person.
func (g *GroupReport) WriteText(w io.Writer) { g.writeText(w) }

func (g *GroupReport) writeText(w io.Writer) {
	if g.Missing {
		fmt.Fprintf(w, "Pod group %s/%s: the PodGroup object does not exist — its %d pods wait until it does\n", g.Namespace, g.Name, len(g.Members))
	} else {
		fmt.Fprintf(w, "Pod group %s/%s: phase %s; %d of minMember %d bound, %d pending", g.Namespace, g.Name, orDash(g.Phase), g.Bound, g.MinMember, g.Pending)
		if g.Timeout > 0 {
			fmt.Fprintf(w, "; assembly timeout %ds", g.Timeout)
		}
		fmt.Fprintln(w)
		if g.Topology != "" {
			fmt.Fprintf(w, "  placed in %s\n", g.Topology)
		}
		if int32(len(g.Members)) < g.MinMember {
			fmt.Fprintf(w, "  only %d of its %d pods exist: nothing is placed until minMember pods exist\n", len(g.Members), g.MinMember)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  MEMBER\tPHASE\tNODE\tWAITING")
	for _, m := range g.Members {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", m.Name, m.Phase, orDash(m.Node), orDash(m.Waiting))
	}
	tw.Flush()
}

// Quota explains the ElasticQuota arithmetic of namespace ns: its min, max,
// use and borrowing, and what each of its pods counts.
func Quota(ctx context.Context, o Options, ns string) (*QuotaNamespaceReport, error) {
	prof, err := mainProfile(o.SchedulerConfig)
	if err != nil {
		return nil, err
	}
	c, err := load(ctx, o, prof, nil)
	if err != nil {
		return nil, err
	}
	defer c.close()
	t := plugins.QuotaTracker(c.fw)
	if t == nil {
		return nil, fmt.Errorf("the scheduler configuration's profile %s has no ElasticQuota", prof.SchedulerName)
	}
	r := &QuotaNamespaceReport{}
	if !t.Governs(ns) {
		return nil, fmt.Errorf("namespace %s has no ElasticQuota: its pods are admitted without quota checks", ns)
	}
	r.Quota = *quotaReport(t, ns)
	for _, s := range t.Snapshot() {
		if s.Namespace != ns && len(s.Borrowed) > 0 {
			r.Borrowers = append(r.Borrowers, fmt.Sprintf("%s borrows %s", s.Namespace, amounts(s.Borrowed)))
		}
	}
	for _, p := range c.pods {
		if p.Namespace != ns || terminated(p) {
			continue
		}
		state := "pending"
		if p.Spec.NodeName != "" {
			state = "on " + p.Spec.NodeName
		}
		r.Pods = append(r.Pods, QuotaPod{Name: p.Name, State: state, Charge: chargeOf(p)})
	}
	sort.Slice(r.Pods, func(i, j int) bool { return r.Pods[i].Name < r.Pods[j].Name })
	return r, nil
}

// QuotaNamespaceReport is `tessera explain quota`'s answer.
type QuotaNamespaceReport struct {
	Quota QuotaReport `json:"quota"`
	// Borrowers are the other namespaces above their min, which a pod of
	// this namespace within its min may reclaim from.
	Borrowers []string   `json:"borrowers,omitempty"`
	Pods      []QuotaPod `json:"pods"`
}

// QuotaPod is one pod of the namespace and what it counts.
type QuotaPod struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Charge string `json:"charge"`
}

// WriteText writes the report for a person.
func (q *QuotaNamespaceReport) WriteText(w io.Writer) {
	q.Quota.writeText(w)
	if len(q.Borrowers) > 0 {
		fmt.Fprintf(w, "  other namespaces above their min (a pod within this namespace's min reclaims from them): %s\n", strings.Join(q.Borrowers, "; "))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  POD\tSTATE\tCOUNTS")
	for _, p := range q.Pods {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.Name, p.State, p.Charge)
	}
	tw.Flush()
}

func chargeOf(p *v1.Pod) string {
	return amounts(kube.QuotaCharge(p))
}

// amounts formats quota amounts for a person: CPU in cores, memory in
// binary units, GPU-equivalents and shares in GPUs, devices as counts.
func amounts(r quota.Resources) string {
	if len(r) == 0 {
		return ""
	}
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		v := r[n]
		var s string
		switch n {
		case string(v1.ResourceCPU):
			s = strconv.FormatFloat(float64(v)/1000, 'f', -1, 64)
		case string(v1.ResourceMemory):
			s = resource.NewQuantity(v, resource.BinarySI).String()
		case quota.ResourceGPUEquivalent:
			// Whole GPUs, MIG slices and shares in one unit.
			n, s = "GPU-equivalents", strconv.FormatFloat(float64(v)/1000, 'f', -1, 64)
		default:
			s = strconv.FormatInt(v, 10)
		}
		parts = append(parts, n+" "+s)
	}
	return strings.Join(parts, ", ")
}
