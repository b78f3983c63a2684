package replay

import (
	"reflect"
	"testing"
)

func TestPodKind(t *testing.T) {
	tests := []struct {
		pod  PodRow
		want string
	}{
		{PodRow{}, "no-GPU"},
		{PodRow{NumGPU: 1, GPUMilli: 0}, "no-GPU"},
		{PodRow{NumGPU: 1, GPUMilli: 470}, "share"},
		{PodRow{NumGPU: 1, GPUMilli: 1000}, "1-GPU"},
		{PodRow{NumGPU: 8, GPUMilli: 1000}, "8-GPU"},
	}
	for _, tt := range tests {
		if got := podKind(tt.pod); got != tt.want {
			t.Errorf("podKind(%+v) = %q, want %q", tt.pod, got, tt.want)
		}
	}
}

func TestTypicalOneGPU(t *testing.T) {
	pods := []PodRow{
		{NumGPU: 1, GPUMilli: 1000, CPUMilli: 8000, MemoryMiB: 100},
		{NumGPU: 1, GPUMilli: 1000, CPUMilli: 2000, MemoryMiB: 300},
		{NumGPU: 1, GPUMilli: 1000, CPUMilli: 4000, MemoryMiB: 200},
		{NumGPU: 1, GPUMilli: 500, CPUMilli: 64000, MemoryMiB: 9000}, // a share: not counted
		{NumGPU: 8, GPUMilli: 1000, CPUMilli: 96000, MemoryMiB: 9000},
	}
	if got := typicalOneGPU(pods); got == nil || got.CPUMilli != 4000 || got.MemoryMiB != 200 {
		t.Errorf("typicalOneGPU = %+v; want the medians 4000, 200", got)
	}
	if got := typicalOneGPU(pods[3:]); got != nil {
		t.Error("typicalOneGPU found a one-GPU pod in a trace without any")
	}
}

func TestMeanBreakdown(t *testing.T) {
	seeds := []SeedResult{
		{AtFull: &Breakdown{Arrived: 100, Allocated: 94, PartlyUsedFree: 5, IdleGPUs: 3, IdleGPUsStranded: 1,
			Gaps:    []Gap{{FreeMilli: 190, GPUs: 10}, {FreeMilli: 60, GPUs: 4}},
			Dropped: []Dropped{{Kind: "share", Pods: 3, GPU: 2}, {Kind: "1-GPU", Pods: 4, GPU: 4}}}},
		{AtFull: &Breakdown{Arrived: 102, Allocated: 96, PartlyUsedFree: 3, IdleGPUs: 5, IdleGPUsStranded: 3,
			Gaps:    []Gap{{FreeMilli: 190, GPUs: 20}, {FreeMilli: 350, GPUs: 2}},
			Dropped: []Dropped{{Kind: "share", Pods: 5, GPU: 6}}}},
		{}, // a seed without a breakdown does not count
	}
	want := Breakdown{Arrived: 101, Allocated: 95, PartlyUsedFree: 4, IdleGPUs: 4, IdleGPUsStranded: 2,
		Gaps:    []Gap{{FreeMilli: 190, GPUs: 15}, {FreeMilli: 350, GPUs: 1}, {FreeMilli: 60, GPUs: 2}},
		Dropped: []Dropped{{Kind: "share", Pods: 4, GPU: 4}, {Kind: "1-GPU", Pods: 2, GPU: 2}}}
	if got := MeanBreakdown(seeds); !reflect.DeepEqual(got, want) {
		t.Errorf("MeanBreakdown =\n%+v\nwant\n%+v", got, want)
	}
}
