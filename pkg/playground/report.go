package playground

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// report prints where every pod went, what each node has left, and why the
// pending pods are pending, in the words the scheduler used.
func report(out io.Writer, nodes []v1.Node, pods []v1.Pod, quotas []schedv1alpha1.ElasticQuota) {
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })

	fmt.Fprintln(out, "Pods")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAMESPACE\tPOD\tASKS\tNODE\tDEVICES\tSTATUS")
	var pending []v1.Pod
	for _, p := range pods {
		node, devices, status := p.Spec.NodeName, "-", string(p.Status.Phase)
		if node == "" {
			node, status = "-", "Pending"
			pending = append(pending, p)
		}
		if raw, ok := p.Annotations[kube.AnnotationAssignment]; ok {
			if a, err := gpu.UnmarshalAssignment(raw); err == nil {
				devices = a.Describe()
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, asks(&p), node, devices, status)
	}
	tw.Flush()

	fmt.Fprintln(out, "\nNodes (one mark per GPU, a space between NUMA nodes:  █ in use  ▒ partly in use (shares, MIG slices)  · free)")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tGPU PRODUCT\tGPUS\tIN USE\tPODS")
	for _, n := range nodes {
		var names []string
		var onNode []*v1.Pod
		for i := range pods {
			if pods[i].Spec.NodeName == n.Name {
				names = append(names, pods[i].Namespace+"/"+pods[i].Name)
				onNode = append(onNode, &pods[i])
			}
		}
		gpuMap, inUse := "-", "-"
		if s := kube.NodeGPUState(&n, onNode); s != nil {
			gpuMap = drawGPUs(s)
			inUse = fmt.Sprintf("%s of %d GPUs", trimFloat(float64(s.UsedMilli())/1000), s.GPUCount())
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", n.Name, n.Labels[kube.LabelProduct], gpuMap, inUse, strings.Join(names, ", "))
	}
	tw.Flush()

	if len(quotas) > 0 {
		fmt.Fprintln(out, "\nQuotas (ElasticQuota; used counts bound pods, borrowed = used above min)")
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAMESPACE\tRESOURCE\tUSED\tMIN\tMAX\tBORROWED")
		for _, q := range quotas {
			used := quota.Resources{}
			for i := range pods {
				if pods[i].Namespace == q.Namespace && pods[i].Spec.NodeName != "" {
					used = used.Add(kube.QuotaCharge(&pods[i]))
				}
			}
			min, max := kube.Amounts(q.Spec.Min), kube.Amounts(q.Spec.Max)
			names := map[string]bool{}
			for n := range min {
				names[n] = true
			}
			for n := range max {
				names[n] = true
			}
			sorted := make([]string, 0, len(names))
			for n := range names {
				sorted = append(sorted, n)
			}
			sort.Strings(sorted)
			for _, n := range sorted {
				maxText := "-"
				if v, ok := max[n]; ok {
					maxText = fmt.Sprint(v)
				}
				borrowed := used[n] - min[n]
				if borrowed < 0 {
					borrowed = 0
				}
				fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\t%d\n", q.Namespace, n, used[n], min[n], maxText, borrowed)
			}
		}
		tw.Flush()
	}

	if len(pending) > 0 {
		fmt.Fprintln(out, "\nWhy pods are pending")
		for _, p := range pending {
			reason := "not yet considered by the scheduler"
			for _, c := range p.Status.Conditions {
				if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
					reason = c.Reason + ": " + c.Message
				}
			}
			fmt.Fprintf(out, "  %s/%s: %s\n", p.Namespace, p.Name, reason)
		}
	}
}

// asks summarises a pod's GPU demand the way a person states it.
func asks(p *v1.Pod) string {
	var parts []string
	req := podRequests(p)
	if q, ok := req[kube.ResourceGPU]; ok && !q.IsZero() {
		parts = append(parts, fmt.Sprintf("%d GPU", q.Value()))
	}
	var mig []string
	for name, q := range req {
		if strings.HasPrefix(string(name), gpu.MIGResourcePrefix) && !q.IsZero() {
			mig = append(mig, fmt.Sprintf("%d x MIG %s", q.Value(), strings.TrimPrefix(string(name), gpu.MIGResourcePrefix)))
		}
	}
	sort.Strings(mig)
	parts = append(parts, mig...)
	if m := p.Annotations[kube.AnnotationShare]; m != "" {
		parts = append(parts, m+"m of a GPU")
	}
	if len(parts) == 0 {
		return "no GPU"
	}
	return strings.Join(parts, ", ")
}

// drawGPUs draws one mark per GPU: █ fully in use, ▒ partly (shares or MIG
// slices), · free; a space separates NUMA nodes.
func drawGPUs(s *gpu.NodeState) string {
	var b strings.Builder
	for i, g := range s.GPUs() {
		if i > 0 && g.GPU.NUMANode != s.GPUs()[i-1].GPU.NUMANode {
			b.WriteByte(' ')
		}
		switch {
		case g.FreeMilli >= g.CapacityMilli && g.Use == gpu.UseFree:
			b.WriteString("·")
		case g.FreeMilli <= 0:
			b.WriteString("█")
		default:
			b.WriteString("▒")
		}
	}
	return b.String()
}

func trimFloat(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".")
}

// podRequests sums container requests (limits where only limits are set,
// as the API server defaults them for extended resources).
func podRequests(p *v1.Pod) v1.ResourceList {
	out := v1.ResourceList{}
	for _, c := range p.Spec.Containers {
		for name, q := range c.Resources.Requests {
			add(out, name, q)
		}
		for name, q := range c.Resources.Limits {
			if _, ok := c.Resources.Requests[name]; !ok {
				add(out, name, q)
			}
		}
	}
	return out
}

func add(l v1.ResourceList, name v1.ResourceName, q resource.Quantity) {
	cur := l[name]
	cur.Add(q)
	l[name] = cur
}
