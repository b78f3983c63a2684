package gpuplacement

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
		want    demand
		wantErr []string
	}{
		{
			name: "no GPU",
			pod:  st.MakePod().Req(map[v1.ResourceName]string{v1.ResourceCPU: "2", v1.ResourceMemory: "4Gi"}).Obj(),
			want: demand{locality: gpu.LocalityPreferred, cpuMilli: 2000, memoryMiB: 4096},
		},
		{
			name: "whole GPUs, required locality",
			pod: st.MakePod().Req(map[v1.ResourceName]string{ResourceGPU: "4"}).
				Annotation(AnnotationTopology, "Required").Obj(),
			want: demand{wholeGPUs: 4, locality: gpu.LocalityRequired},
		},
		{
			name: "two MIG profiles, sorted",
			pod:  st.MakePod().Req(map[v1.ResourceName]string{"nvidia.com/mig-3g.40gb": "1", "nvidia.com/mig-1g.10gb": "2"}).Obj(),
			want: demand{mig: []gpu.MIGRequest{{Profile: "1g.10gb", Count: 2}, {Profile: "3g.40gb", Count: 1}}, locality: gpu.LocalityPreferred},
		},
		{
			name: "share",
			pod:  st.MakePod().Annotation(AnnotationShare, " 250 ").Obj(),
			want: demand{shareMilli: 250, locality: gpu.LocalityPreferred},
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
			got, err := parseDemand(tc.pod)
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
	d := demand{wholeGPUs: 2, locality: gpu.LocalityPreferred}
	if r := d.requestOn(""); r.GPUs != 2 || len(r.MIG) != 0 {
		t.Errorf("plain node: %+v", r)
	}
	r := d.requestOn("1g.10gb")
	if r.GPUs != 0 || !reflect.DeepEqual(r.MIG, []gpu.MIGRequest{{Profile: "1g.10gb", Count: 2}}) {
		t.Errorf("single-strategy node: %+v", r)
	}
}
