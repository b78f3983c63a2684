package kube

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/tessera-sched/tessera/pkg/quota"
)

func TestAmounts(t *testing.T) {
	got := Amounts(v1.ResourceList{
		v1.ResourceCPU:    resource.MustParse("1500m"),
		v1.ResourceMemory: resource.MustParse("2Gi"),
		"nvidia.com/gpu":  resource.MustParse("4"),
		"tessera.dev/gpu": resource.MustParse("2.5"),
	})
	want := quota.Resources{"cpu": 1500, "memory": 2 << 30, "nvidia.com/gpu": 4, "tessera.dev/gpu": 2500}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Amounts = %v, want %v", got, want)
	}
	if Amounts(nil) != nil {
		t.Error("empty list should convert to nil (no constraint)")
	}
}

func TestQuotaCharge(t *testing.T) {
	tests := []struct {
		name string
		pod  *v1.Pod
		want quota.Resources
	}{
		{
			name: "whole GPUs count as GPU equivalents",
			pod:  st.MakePod().Req(map[v1.ResourceName]string{v1.ResourceCPU: "2", "nvidia.com/gpu": "2"}).Obj(),
			want: quota.Resources{"cpu": 2000, "nvidia.com/gpu": 2, "tessera.dev/gpu": 2000},
		},
		{
			name: "MIG 3g is 3/7 of a GPU",
			pod:  st.MakePod().Req(map[v1.ResourceName]string{"nvidia.com/mig-3g.40gb": "1"}).Obj(),
			want: quota.Resources{"nvidia.com/mig-3g.40gb": 1, "tessera.dev/gpu": 428},
		},
		{
			name: "a share is its milli",
			pod:  st.MakePod().Annotation(AnnotationShare, "250").Obj(),
			want: quota.Resources{"tessera.dev/gpu-milli": 250, "tessera.dev/gpu": 250},
		},
		{
			name: "a share's admission slot is not charged",
			pod:  st.MakePod().Annotation(AnnotationShare, "250").Req(map[v1.ResourceName]string{ResourceShareSlot: "1"}).Obj(),
			want: quota.Resources{"tessera.dev/gpu-milli": 250, "tessera.dev/gpu": 250},
		},
		{
			name: "an unknown MIG profile is charged as a whole GPU per instance",
			pod:  st.MakePod().Req(map[v1.ResourceName]string{"nvidia.com/mig-9g.99gb": "2"}).Obj(),
			want: quota.Resources{"nvidia.com/mig-9g.99gb": 2, "tessera.dev/gpu": 2000},
		},
		{
			name: "a share out of range is not charged (GPUPlacement rejects the pod)",
			pod:  st.MakePod().Annotation(AnnotationShare, "1000").Obj(),
			want: quota.Resources{},
		},
		{
			name: "a malformed share is not charged (GPUPlacement rejects the pod)",
			pod:  st.MakePod().Annotation(AnnotationShare, "lots").Obj(),
			want: quota.Resources{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := QuotaCharge(tc.pod); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("QuotaCharge = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNodeCapacity(t *testing.T) {
	node := st.MakeNode().Name("n").Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "8", "nvidia.com/gpu": "4", "nvidia.com/mig-1g.10gb": "7", ResourceShareSlot: "400"}).Obj()
	got := NodeCapacity(node)
	if got["tessera.dev/gpu"] != 5000 || got["tessera.dev/gpu-milli"] != 4000 || got["cpu"] != 8000 || got[string(ResourceShareSlot)] != 0 {
		t.Errorf("NodeCapacity = %v: want 5 GPU equivalents (4 whole + 7 x 1g), 4000 share milli, 8000m CPU, no share slots", got)
	}
}
