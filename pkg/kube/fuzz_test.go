package kube

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/quota"
)

// FuzzParseDemand: what a pod asks for comes from users (annotations,
// resource names and quantities); ParseDemand never panics, refuses with an
// error that names the annotation or resource, and what it accepts is in
// range (a share of 1..999m alone, whole GPUs and MIG counts not negative).
// The quota charge of the same pod never panics either.
func FuzzParseDemand(f *testing.F) {
	f.Add("250", "preferred", "nvidia.com/gpu", "2")
	f.Add("", "", "nvidia.com/mig-3g.40gb", "1")
	f.Add("1000", "Required", "tessera.dev/gpu-share-slot", "1")
	f.Add("-5", "sometimes", "nvidia.com/mig-9g.99gb", "3")
	f.Add(" 999 ", "required", "cpu", "500m")
	f.Fuzz(func(t *testing.T, share, topology, name, quantity string) {
		// Quantities with huge exponents ("20000e20000000000") make
		// apimachinery's own arithmetic (Quantity.Value) run for minutes;
		// that is not Tessera's code to fuzz.
		if len(quantity) > 10 || (strings.ContainsAny(quantity, "eE") && len(quantity) > 5) {
			return
		}
		q, err := resource.ParseQuantity(quantity)
		if err != nil || (!strings.Contains(name, "/") && name != "cpu" && name != "memory") {
			return
		}
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}},
			Spec:       v1.PodSpec{Containers: []v1.Container{{Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceName(name): q}, Requests: v1.ResourceList{v1.ResourceName(name): q}}}}},
		}
		if share != "" {
			pod.Annotations[AnnotationShare] = share
		}
		if topology != "" {
			pod.Annotations[AnnotationTopology] = topology
		}
		_ = QuotaCharge(pod)
		d, err := ParseDemand(pod)
		if err != nil {
			if !strings.Contains(err.Error(), "tessera.dev/") {
				t.Errorf("error %q names no annotation or resource", err)
			}
			return
		}
		if d.ShareMilli < 0 || d.ShareMilli > 999 || (d.ShareMilli > 0 && (d.WholeGPUs > 0 || len(d.MIG) > 0)) {
			t.Errorf("accepted demand %+v", d)
		}
		for _, m := range d.MIG {
			if m.Count <= 0 || m.Profile == "" {
				t.Errorf("accepted MIG request %+v", m)
			}
		}
	})
}

// FuzzTopologyFromLabels: without tessera-agent a node's GPUs come from
// its labels (GPU Feature Discovery's, or anyone's with the right to label
// nodes) and its allocatable counts. TopologyFromLabels never panics, and
// what it returns is a topology the device model accepts, of a size bounded
// by what the node advertises.
func FuzzTopologyFromLabels(f *testing.F) {
	f.Add("NVIDIA-H100-80GB-HBM3", "none", "8", int64(8), "", int64(0))
	f.Add("NVIDIA-A100-SXM4-80GB", "mixed", "8", int64(0), "3g.40gb", int64(8))
	f.Add("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", "single", "8", int64(56), "", int64(0))
	f.Add("NVIDIA-A100-SXM4-80GB", "mixed", "x", int64(2), "7g.80gb", int64(3))
	f.Add("", "single", "-1", int64(-3), "9g.99gb", int64(1))
	f.Fuzz(func(t *testing.T, product, strategy, count string, gpus int64, profile string, migCount int64) {
		alloc := v1.ResourceList{}
		if gpus != 0 {
			alloc[ResourceGPU] = *resource.NewQuantity(gpus, resource.DecimalSI)
		}
		if profile != "" && migCount != 0 {
			alloc[v1.ResourceName("nvidia.com/mig-"+profile)] = *resource.NewQuantity(migCount, resource.DecimalSI)
		}
		node := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{LabelProduct: product, LabelMIGStrategy: strategy, LabelGPUCount: count}},
			Status:     v1.NodeStatus{Allocatable: alloc, Capacity: alloc},
		}
		topo, ok := TopologyFromLabels(node)
		if !ok {
			return
		}
		if err := topo.Topo.Validate(); err != nil {
			t.Fatalf("TopologyFromLabels returned an invalid topology: %v", err)
		}
		if n := int64(len(topo.Topo.GPUs)); n > max(gpus, 0)+max(migCount, 0) || n > MaxGPUsPerNode {
			t.Fatalf("%d GPUs from %d whole GPUs and %d MIG devices advertised", n, gpus, migCount)
		}
		_ = LabelNodeGPUs(klog.Background(), node, nil)
	})
}

// FuzzElasticQuota: an ElasticQuota's min and max are users' quantities.
// Converted (Amounts) and given to the quota ledger, they are accepted only
// when min <= max and neither is negative, never panic, and an accepted
// quota never admits a request that takes the namespace above its max.
func FuzzElasticQuota(f *testing.F) {
	f.Add("4", "8", "2", "3")
	f.Add("8", "4", "1", "0")
	f.Add("-1", "2", "1", "1")
	f.Add("1500m", "2", "1", "1")
	f.Add("0", "0", "0", "0")
	f.Fuzz(func(t *testing.T, minQ, maxQ, usedQ, reqQ string) {
		parse := func(s string) (resource.Quantity, bool) {
			if len(s) > 10 || strings.ContainsAny(s, "eE") {
				return resource.Quantity{}, false
			}
			q, err := resource.ParseQuantity(s)
			return q, err == nil
		}
		min, ok1 := parse(minQ)
		max, ok2 := parse(maxQ)
		used, ok3 := parse(usedQ)
		req, ok4 := parse(reqQ)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return
		}
		gpus := func(q resource.Quantity) v1.ResourceList { return v1.ResourceList{ResourceGPU: q} }
		tr := quota.NewTracker()
		q := quota.Quota{Namespace: "ns", Min: Amounts(gpus(min)), Max: Amounts(gpus(max))}
		err := tr.SetQuota("ns/q", q)
		lo, hi := q.Min[string(ResourceGPU)], q.Max[string(ResourceGPU)]
		if (err == nil) != (lo >= 0 && hi >= 0 && lo <= hi) {
			t.Fatalf("SetQuota(min %d, max %d) = %v", lo, hi, err)
		}
		if err != nil {
			if !strings.Contains(err.Error(), "min[") && !strings.Contains(err.Error(), "max[") {
				t.Errorf("error %q names no field", err)
			}
			return
		}
		tr.AddPod(quota.PodUsage{UID: "running", Namespace: "ns", Resources: Amounts(gpus(used))})
		r := Amounts(gpus(req))
		d := tr.CheckAdmit("ns", r)
		u := Amounts(gpus(used))[string(ResourceGPU)]
		if d.Admit && r[string(ResourceGPU)] > 0 && u+r[string(ResourceGPU)] > hi {
			t.Fatalf("admitted %d GPUs with %d used of max %d", r[string(ResourceGPU)], u, hi)
		}
	})
}
