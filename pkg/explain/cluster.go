package explain

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/gpumap"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/plugins"
)

// ClusterReport is every node's GPUs and what holds them, as GPUPlacement
// sees them now.
type ClusterReport struct {
	Nodes []ClusterNode `json:"nodes"`
	// Map is the same as a picture's rows (see gpumap.Write).
	Map []gpumap.Node `json:"-"`
}

// ClusterNode is one node's row.
type ClusterNode struct {
	Name     string   `json:"name"`
	Product  string   `json:"product,omitempty"`
	GPUs     int      `json:"gpus"`
	FreeGPUs string   `json:"freeGPUs,omitempty"`
	Pods     []string `json:"pods,omitempty"`
}

// Cluster describes every node's GPUs.
func Cluster(ctx context.Context, o Options) (*ClusterReport, error) {
	prof, err := mainProfile(o.SchedulerConfig)
	if err != nil {
		return nil, err
	}
	c, err := load(ctx, o, prof, nil)
	if err != nil {
		return nil, err
	}
	defer c.close()
	logger := klog.FromContext(ctx)
	r := &ClusterReport{}
	for _, ni := range c.infos {
		n := ni.Node()
		var pods []*v1.Pod
		for _, pi := range ni.GetPods() {
			pods = append(pods, pi.GetPod())
		}
		row := ClusterNode{Name: n.Name}
		m := gpumap.Node{Name: n.Name}
		if ng := plugins.NodeGPUs(c.fw, logger, n, pods); ng.GPUs != nil {
			row.FreeGPUs = freeGPUs(ng)
			row.GPUs = ng.GPUs.GPUCount()
			m.GPUs = mapGPUs(ng, pods)
			if len(m.GPUs) > 0 {
				row.Product = ng.Topology.Topo.GPUs[0].Product
				m.Product = row.Product
			}
		}
		for _, p := range pods {
			if a, err := gpu.UnmarshalAssignment(p.Annotations[gpu.AnnotationAssignment]); err == nil && !a.IsZero() {
				row.Pods = append(row.Pods, fmt.Sprintf("%s/%s (%s)", p.Namespace, p.Name, a.Describe()))
			}
		}
		sort.Strings(row.Pods)
		r.Nodes = append(r.Nodes, row)
		r.Map = append(r.Map, m)
	}
	return r, nil
}

// mapGPUs is the picture of a node's GPUs: the topology's GPUs and MIG
// instances, and which pod holds what by the pods' assignments.
func mapGPUs(ng *kube.NodeGPUs, pods []*v1.Pod) []gpumap.GPU {
	status := ng.GPUs.GPUs()
	out := make([]gpumap.GPU, len(status))
	at := map[int]*gpumap.GPU{}
	for i, s := range status {
		g := &out[i]
		*g = gpumap.GPU{Index: s.GPU.Index, NUMA: s.GPU.NUMANode, Domain: s.GPU.Domain, MIG: s.GPU.MIG != gpu.MIGDisabled}
		for _, m := range s.MIG {
			if m.Existing {
				g.Slots = append(g.Slots, gpumap.Slot{Start: m.Start, Size: migSlices(s.GPU.Product, m.Profile), Profile: m.Profile})
			}
		}
		at[s.GPU.Index] = g
	}
	for _, p := range pods {
		a, err := gpu.UnmarshalAssignment(p.Annotations[gpu.AnnotationAssignment])
		if err != nil || a.IsZero() {
			continue
		}
		name := p.Namespace + "/" + p.Name
		for _, i := range a.GPUs {
			if g := at[i]; g != nil {
				g.Whole = name
			}
		}
		for _, sh := range a.Shares {
			if g := at[sh.GPU]; g != nil {
				g.Shares = append(g.Shares, gpumap.Share{Milli: sh.Milli, Pod: name})
			}
		}
		for _, m := range a.MIG {
			g := at[m.GPU]
			if g == nil {
				continue
			}
			held := false
			for k := range g.Slots {
				if g.Slots[k].Start == m.Start && g.Slots[k].Pod == "" {
					g.Slots[k].Pod, held = name, true
					break
				}
			}
			if !held {
				var product string
				for _, s := range status {
					if s.GPU.Index == m.GPU {
						product = s.GPU.Product
					}
				}
				g.Slots = append(g.Slots, gpumap.Slot{Start: m.Start, Size: migSlices(product, m.Profile), Profile: m.Profile, Pod: name})
			}
		}
	}
	return out
}

// migSlices is how many of the eight memory slices a MIG profile spans.
func migSlices(product, profile string) int {
	if p, ok := gpu.LookupProduct(product); ok {
		if mp, ok := p.Profile(profile); ok {
			return mp.MemorySlices
		}
	}
	return 1
}

// WriteText writes the report for a person.
func (r *ClusterReport) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tGPU PRODUCT\tFREE GPUS\tGPU PODS")
	for _, n := range r.Nodes {
		free := n.FreeGPUs
		if n.GPUs == 0 {
			free = "no GPUs"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, orDash(n.Product), free, orDash(strings.Join(n.Pods, ", ")))
	}
	tw.Flush()
}

// WriteSVG draws the report's GPU map (see gpumap).
func (r *ClusterReport) WriteSVG(w io.Writer, title string) error {
	return gpumap.Write(w, title, r.Map)
}
