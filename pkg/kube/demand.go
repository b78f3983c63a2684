package kube

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// Demand is what a pod asks for, independent of the node: whole GPUs (which
// a MIG single-strategy node serves as MIG devices), MIG instances by
// profile, a share, the locality wanted, and the CPU and memory that come
// with them.
type Demand struct {
	WholeGPUs  int
	MIG        []gpu.MIGRequest
	ShareMilli int
	Locality   gpu.Locality
	CPUMilli   int64
	MemoryMiB  int64
	// Products are the GPU products the pod's node selector or required
	// node affinity allows, in gpu.ProductSet form; empty when any.
	Products string
}

// IsZero reports a pod that asks for no GPU capacity.
func (d *Demand) IsZero() bool {
	return d.WholeGPUs == 0 && len(d.MIG) == 0 && d.ShareMilli == 0
}

// RequestOn turns the demand into the request it is on a node whose
// topology serves whole GPUs as MIG devices of singleProfile ("" for
// none): there, whole GPUs are MIG devices of that profile.
func (d *Demand) RequestOn(singleProfile string) gpu.Request {
	r := gpu.Request{GPUs: d.WholeGPUs, MIG: d.MIG, ShareMilli: d.ShareMilli, Locality: d.Locality}
	if singleProfile != "" && d.WholeGPUs > 0 {
		r.GPUs = 0
		r.MIG = append(append([]gpu.MIGRequest{}, d.MIG...), gpu.MIGRequest{Profile: singleProfile, Count: d.WholeGPUs})
	}
	return r
}

// ParseDemand reads a pod's GPU demand. The error names the annotation or
// resource and the value, for the pod's PodScheduled condition and Event.
func ParseDemand(pod *v1.Pod) (*Demand, error) {
	d := &Demand{Locality: gpu.LocalityPreferred}
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	if q, ok := reqs[v1.ResourceCPU]; ok {
		d.CPUMilli = q.MilliValue()
	}
	if q, ok := reqs[v1.ResourceMemory]; ok {
		d.MemoryMiB = q.Value() >> 20
	}
	for name, q := range reqs {
		if name == ResourceGPU {
			d.WholeGPUs = int(q.Value())
			continue
		}
		if profile, ok := gpu.ParseMIGResource(string(name)); ok && q.Value() > 0 {
			d.MIG = append(d.MIG, gpu.MIGRequest{Profile: profile, Count: int(q.Value())})
		}
	}
	sort.Slice(d.MIG, func(i, j int) bool { return d.MIG[i].Profile < d.MIG[j].Profile })

	milli, err := ShareMilli(pod)
	if err != nil {
		return nil, err
	}
	if _, ok := reqs[ResourceShareSlot]; ok && milli == 0 {
		return nil, fmt.Errorf("resource %s is requested without annotation %s: a slot only admits a GPU share; ask for the share with the annotation (tessera-agent's admission policy then adds the slot)", ResourceShareSlot, AnnotationShare)
	}
	if milli > 0 {
		if d.WholeGPUs > 0 || len(d.MIG) > 0 {
			return nil, fmt.Errorf("annotation %s=%q cannot be combined with %s or MIG resources in one pod", AnnotationShare, pod.Annotations[AnnotationShare], ResourceGPU)
		}
		d.ShareMilli = milli
	}
	d.Products = productsOf(pod)
	if v, ok := pod.Annotations[AnnotationTopology]; ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "required":
			d.Locality = gpu.LocalityRequired
		case "preferred", "":
			d.Locality = gpu.LocalityPreferred
		default:
			return nil, fmt.Errorf("annotation %s: invalid value %q: must be \"required\" or \"preferred\"", AnnotationTopology, v)
		}
	}
	return d, nil
}

// ShareMilli reads the pod's share annotation: 0 without one, an error
// naming the annotation and value when it is not an integer from 1 to 999.
// It is the one parser of the annotation: GPUPlacement refuses the pod on
// the error, the quota charge leaves the share out (the pod is never
// placed).
func ShareMilli(pod *v1.Pod) (int, error) {
	v, ok := pod.Annotations[AnnotationShare]
	if !ok {
		return 0, nil
	}
	milli, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || milli < 1 || milli > 999 {
		return 0, fmt.Errorf("annotation %s: invalid value %q: must be an integer from 1 to 999 (milli-GPUs of one GPU; ask for whole GPUs with %s)", AnnotationShare, v, ResourceGPU)
	}
	return milli, nil
}

// productsOf is the set of GPU products (values of gpu.LabelProduct) a pod
// may run on by its nodeSelector and required node affinity, in
// gpu.ProductSet form, or "" when that does not limit the product. Only
// "In" expressions limit it: node selector terms are alternatives, so one
// term without such an expression allows any product; expressions within a
// term must all hold, so their value lists intersect; the nodeSelector
// applies on top of the affinity. A pod limited to no product at all counts
// as unlimited: it cannot be placed, and protecting capacity for it would
// be wasted.
func productsOf(pod *v1.Pod) string {
	var allowed []string
	limited := false // allowed holds the only products allowed
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			inTerm, ok := termProducts(term)
			if !ok {
				allowed, limited = nil, false
				break
			}
			allowed, limited = append(allowed, inTerm...), true
		}
	}
	if v, ok := pod.Spec.NodeSelector[gpu.LabelProduct]; ok {
		if !limited || slices.Contains(allowed, v) {
			allowed = []string{v}
		} else {
			allowed = nil
		}
	}
	return gpu.ProductSet(allowed)
}

// termProducts is the products one node selector term allows: the
// intersection of its "In" expressions on gpu.LabelProduct. ok is false
// when the term has none, and so allows any product.
func termProducts(term v1.NodeSelectorTerm) (products []string, ok bool) {
	for _, e := range term.MatchExpressions {
		if e.Key != gpu.LabelProduct || e.Operator != v1.NodeSelectorOpIn {
			continue
		}
		if !ok {
			products, ok = slices.Clone(e.Values), true
			continue
		}
		products = slices.DeleteFunc(products, func(p string) bool { return !slices.Contains(e.Values, p) })
	}
	return products, ok
}
