package kube

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
