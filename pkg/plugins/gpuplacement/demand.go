package gpuplacement

import (
	"fmt"
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
