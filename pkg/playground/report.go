package playground

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	gpuResource          = "nvidia.com/gpu"
	migResourcePrefix    = "nvidia.com/mig-"
	shareAnnotation      = "tessera.dev/gpu-milli"
	assignmentAnnotation = "tessera.dev/gpu-assignment"
	productLabel         = "nvidia.com/gpu.product"
)

// report prints where every pod went, what each node has left, and why the
// pending pods are pending, in the words the scheduler used.
func report(out io.Writer, nodes []v1.Node, pods []v1.Pod) {
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
		node, devices, status := p.Spec.NodeName, p.Annotations[assignmentAnnotation], string(p.Status.Phase)
		if node == "" {
			node, status = "-", "Pending"
			pending = append(pending, p)
		}
		if devices == "" {
			devices = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, asks(&p), node, devices, status)
	}
	tw.Flush()

	fmt.Fprintln(out, "\nNodes")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tGPU PRODUCT\tDEVICES IN USE\tPODS")
	for _, n := range nodes {
		used := map[v1.ResourceName]int64{}
		var names []string
		for _, p := range pods {
			if p.Spec.NodeName != n.Name {
				continue
			}
			names = append(names, p.Namespace+"/"+p.Name)
			for name, q := range podRequests(&p) {
				used[name] += q.Value()
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", n.Name, n.Labels[productLabel], deviceUse(n.Status.Allocatable, used), strings.Join(names, ", "))
	}
	tw.Flush()

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
	if q, ok := req[gpuResource]; ok && !q.IsZero() {
		parts = append(parts, fmt.Sprintf("%d GPU", q.Value()))
	}
	var mig []string
	for name, q := range req {
		if strings.HasPrefix(string(name), migResourcePrefix) && !q.IsZero() {
			mig = append(mig, fmt.Sprintf("%d x MIG %s", q.Value(), strings.TrimPrefix(string(name), migResourcePrefix)))
		}
	}
	sort.Strings(mig)
	parts = append(parts, mig...)
	if m := p.Annotations[shareAnnotation]; m != "" {
		parts = append(parts, m+"m of a GPU")
	}
	if len(parts) == 0 {
		return "no GPU"
	}
	return strings.Join(parts, ", ")
}

// deviceUse prints used/allocatable for each GPU-like resource of a node.
func deviceUse(alloc v1.ResourceList, used map[v1.ResourceName]int64) string {
	var parts []string
	for name, q := range alloc {
		if name == gpuResource || strings.HasPrefix(string(name), migResourcePrefix) {
			label := "GPU"
			if name != gpuResource {
				label = strings.TrimPrefix(string(name), migResourcePrefix)
			}
			parts = append(parts, fmt.Sprintf("%d/%d %s", used[name], q.Value(), label))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
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
