package gpuplacement

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

const (
	// ResourceGPU is NVIDIA's device-plugin resource for whole GPUs (and, on
	// nodes labelled nvidia.com/mig.strategy=single, for MIG devices).
	ResourceGPU v1.ResourceName = "nvidia.com/gpu"
	// AnnotationShare asks for a share of one GPU in milli-GPUs (1-999). No
	// extended resource exists for shares; Tessera accounts them per GPU.
	AnnotationShare = "tessera.dev/gpu-milli"
	// AnnotationTopology is "required" or "preferred" (default): whether a
	// multi-GPU pod must get GPUs of one NVLink domain or NUMA node.
	AnnotationTopology = "tessera.dev/gpu-topology"
	// AnnotationAssignment is written by PreBind: the exact devices a pod
	// got, in the versioned JSON form of gpu.MarshalAssignment.
	AnnotationAssignment = gpu.AnnotationAssignment
)

// demand is what a pod asks for, independent of the node: whole GPUs (which
// a MIG single-strategy node serves as MIG devices), MIG instances by
// profile, a share, and the locality wanted.
type demand struct {
	wholeGPUs  int
	mig        []gpu.MIGRequest
	shareMilli int
	locality   gpu.Locality
	cpuMilli   int64
	memoryMiB  int64
	// products are the GPU products the pod's node selector or required
	// node affinity allows, in gpu.ProductSet form; empty when any.
	products string
}

func (d *demand) isZero() bool {
	return d.wholeGPUs == 0 && len(d.mig) == 0 && d.shareMilli == 0
}

// requestOn turns the demand into the request it is on a node: on a MIG
// single-strategy node whole GPUs are MIG devices of the node's profile.
func (d *demand) requestOn(singleProfile string) gpu.Request {
	r := gpu.Request{GPUs: d.wholeGPUs, MIG: d.mig, ShareMilli: d.shareMilli, Locality: d.locality}
	if singleProfile != "" && d.wholeGPUs > 0 {
		r.GPUs = 0
		r.MIG = append(append([]gpu.MIGRequest{}, d.mig...), gpu.MIGRequest{Profile: singleProfile, Count: d.wholeGPUs})
	}
	return r
}

// parseDemand reads a pod's GPU demand. The error names the annotation or
// resource and the value, for the pod's PodScheduled condition and Event.
func parseDemand(pod *v1.Pod) (*demand, error) {
	d := &demand{locality: gpu.LocalityPreferred}
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	if q, ok := reqs[v1.ResourceCPU]; ok {
		d.cpuMilli = q.MilliValue()
	}
	if q, ok := reqs[v1.ResourceMemory]; ok {
		d.memoryMiB = q.Value() >> 20
	}
	var profiles []string
	for name, q := range reqs {
		if name == ResourceGPU {
			d.wholeGPUs = int(q.Value())
			continue
		}
		if profile, ok := gpu.ParseMIGResource(string(name)); ok && q.Value() > 0 {
			d.mig = append(d.mig, gpu.MIGRequest{Profile: profile, Count: int(q.Value())})
			profiles = append(profiles, profile)
		}
	}
	sort.Slice(d.mig, func(i, j int) bool { return d.mig[i].Profile < d.mig[j].Profile })

	if v, ok := pod.Annotations[AnnotationShare]; ok {
		milli, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || milli < 1 || milli > 999 {
			return nil, fmt.Errorf("annotation %s: invalid value %q: must be an integer from 1 to 999 (milli-GPUs of one GPU; ask for whole GPUs with %s)", AnnotationShare, v, ResourceGPU)
		}
		if d.wholeGPUs > 0 || len(d.mig) > 0 {
			return nil, fmt.Errorf("annotation %s=%q cannot be combined with %s or MIG resources in one pod", AnnotationShare, v, ResourceGPU)
		}
		d.shareMilli = milli
	}
	d.products = productsOf(pod)
	if v, ok := pod.Annotations[AnnotationTopology]; ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "required":
			d.locality = gpu.LocalityRequired
		case "preferred", "":
			d.locality = gpu.LocalityPreferred
		default:
			return nil, fmt.Errorf("annotation %s: invalid value %q: must be \"required\" or \"preferred\"", AnnotationTopology, v)
		}
	}
	return d, nil
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
