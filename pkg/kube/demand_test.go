package kube

import (
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

func TestParseDemand(t *testing.T) {
	tests := []struct {
		name    string
		pod     *v1.Pod
		want    Demand
		wantErr []string
	}{
		{
			name: "no GPU",
			pod:  st.MakePod().Req(map[v1.ResourceName]string{v1.ResourceCPU: "2", v1.ResourceMemory: "4Gi"}).Obj(),
			want: Demand{Locality: gpu.LocalityPreferred, CPUMilli: 2000, MemoryMiB: 4096},
		},
		{
			name: "whole GPUs, required locality",
			pod: st.MakePod().Req(map[v1.ResourceName]string{ResourceGPU: "4"}).
				Annotation(AnnotationTopology, "Required").Obj(),
			want: Demand{WholeGPUs: 4, Locality: gpu.LocalityRequired},
		},
		{
			name: "two MIG profiles, sorted",
			pod:  st.MakePod().Req(map[v1.ResourceName]string{"nvidia.com/mig-3g.40gb": "1", "nvidia.com/mig-1g.10gb": "2"}).Obj(),
			want: Demand{MIG: []gpu.MIGRequest{{Profile: "1g.10gb", Count: 2}, {Profile: "3g.40gb", Count: 1}}, Locality: gpu.LocalityPreferred},
		},
		{
			name: "share",
			pod:  st.MakePod().Annotation(AnnotationShare, " 250 ").Obj(),
			want: Demand{ShareMilli: 250, Locality: gpu.LocalityPreferred},
		},
		{
			name: "share with the slot the admission policy adds",
			pod:  st.MakePod().Annotation(AnnotationShare, "250").Req(map[v1.ResourceName]string{ResourceShareSlot: "1"}).Obj(),
			want: Demand{ShareMilli: 250, Locality: gpu.LocalityPreferred},
		},
		{
			name:    "slot without a share",
			pod:     st.MakePod().Req(map[v1.ResourceName]string{ResourceShareSlot: "1"}).Obj(),
			wantErr: []string{"tessera.dev/gpu-share-slot", "without annotation tessera.dev/gpu-milli"},
		},
		{
			name:    "share not a number",
			pod:     st.MakePod().Annotation(AnnotationShare, "quarter").Obj(),
			wantErr: []string{AnnotationShare, `"quarter"`, "1 to 999"},
		},
		{
			name:    "share of a whole GPU",
			pod:     st.MakePod().Annotation(AnnotationShare, "1000").Obj(),
			wantErr: []string{AnnotationShare, `"1000"`},
		},
		{
			name:    "share combined with whole GPUs",
			pod:     st.MakePod().Req(map[v1.ResourceName]string{ResourceGPU: "1"}).Annotation(AnnotationShare, "500").Obj(),
			wantErr: []string{AnnotationShare, "cannot be combined"},
		},
		{
			name:    "bad locality",
			pod:     st.MakePod().Req(map[v1.ResourceName]string{ResourceGPU: "2"}).Annotation(AnnotationTopology, "nearby").Obj(),
			wantErr: []string{AnnotationTopology, `"nearby"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDemand(tc.pod)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("want error, got %+v", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got %+v, want %+v", *got, tc.want)
			}
		})
	}
}

func TestRequestOnSingleStrategy(t *testing.T) {
	d := Demand{WholeGPUs: 2, Locality: gpu.LocalityPreferred}
	if r := d.RequestOn(""); r.GPUs != 2 || len(r.MIG) != 0 {
		t.Errorf("plain node: %+v", r)
	}
	r := d.RequestOn("1g.10gb")
	if r.GPUs != 0 || !reflect.DeepEqual(r.MIG, []gpu.MIGRequest{{Profile: "1g.10gb", Count: 2}}) {
		t.Errorf("single-strategy node: %+v", r)
	}
}

func TestProductsOf(t *testing.T) {
	in := func(values ...string) v1.NodeSelectorRequirement {
		return v1.NodeSelectorRequirement{Key: gpu.LabelProduct, Operator: v1.NodeSelectorOpIn, Values: values}
	}
	other := v1.NodeSelectorRequirement{Key: "zone", Operator: v1.NodeSelectorOpIn, Values: []string{"a"}}
	notIn := v1.NodeSelectorRequirement{Key: gpu.LabelProduct, Operator: v1.NodeSelectorOpNotIn, Values: []string{"T4"}}
	pod := func(selector map[string]string, terms ...[]v1.NodeSelectorRequirement) *v1.Pod {
		p := st.MakePod().Req(map[v1.ResourceName]string{ResourceGPU: "1"}).Obj()
		p.Spec.NodeSelector = selector
		if len(terms) > 0 {
			ns := &v1.NodeSelector{}
			for _, exprs := range terms {
				ns.NodeSelectorTerms = append(ns.NodeSelectorTerms, v1.NodeSelectorTerm{MatchExpressions: exprs})
			}
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: ns}}
		}
		return p
	}
	tests := []struct {
		name string
		pod  *v1.Pod
		want string
	}{
		{"no constraint", pod(nil), ""},
		{"node selector", pod(map[string]string{gpu.LabelProduct: "T4"}), "T4"},
		{"other node selector", pod(map[string]string{"zone": "a"}), ""},
		{"affinity In, sorted and deduplicated", pod(nil, []v1.NodeSelectorRequirement{in("V100", "T4", "V100"), other}), "T4|V100"},
		{"terms are alternatives", pod(nil, []v1.NodeSelectorRequirement{in("T4")}, []v1.NodeSelectorRequirement{in("A10")}), "A10|T4"},
		{"a term without a product allows any", pod(nil, []v1.NodeSelectorRequirement{in("T4")}, []v1.NodeSelectorRequirement{other}), ""},
		{"expressions in a term intersect", pod(nil, []v1.NodeSelectorRequirement{in("T4", "V100"), in("V100", "A10")}), "V100"},
		{"NotIn does not limit", pod(nil, []v1.NodeSelectorRequirement{notIn}), ""},
		{"selector within affinity", pod(map[string]string{gpu.LabelProduct: "T4"}, []v1.NodeSelectorRequirement{in("T4", "V100")}), "T4"},
		{"selector outside affinity: nothing allowed, counted as unlimited", pod(map[string]string{gpu.LabelProduct: "A10"}, []v1.NodeSelectorRequirement{in("T4")}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := productsOf(tt.pod); got != tt.want {
				t.Errorf("productsOf = %q, want %q", got, tt.want)
			}
			d, err := ParseDemand(tt.pod)
			if err != nil || d.Products != tt.want {
				t.Errorf("parseDemand: products %q, err %v; want %q", d.Products, err, tt.want)
			}
		})
	}
}
