package quota

import (
	"maps"
	"testing"
)

func TestWithGPUEquivalents(t *testing.T) {
	tests := []struct {
		name string
		in   Resources
		want Resources
	}{
		{name: "nil", in: nil, want: nil},
		{name: "no GPUs", in: Resources{ResourceCPU: 100}, want: Resources{ResourceCPU: 100}},
		{
			name: "whole GPUs",
			in:   Resources{ResourceNvidiaGPU: 2},
			want: Resources{ResourceNvidiaGPU: 2, ResourceGPUEquivalent: 2000},
		},
		{
			name: "MIG resource names",
			in:   Resources{"nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-4g.40gb": 1},
			want: Resources{"nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-4g.40gb": 1, ResourceGPUEquivalent: 1000},
		},
		{
			name: "share replaces a stale derived value",
			in:   Resources{ResourceGPUShare: 300, ResourceGPUEquivalent: 9999},
			want: Resources{ResourceGPUShare: 300, ResourceGPUEquivalent: 300},
		},
		{
			name: "stale derived value removed",
			in:   Resources{ResourceGPUEquivalent: 9999},
			want: Resources{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in.Clone()
			got := WithGPUEquivalents(tt.in)
			if !maps.Equal(got, tt.want) {
				t.Errorf("WithGPUEquivalents(%v) = %v, want %v", tt.in, got, tt.want)
			}
			if !maps.Equal(in, tt.in) {
				t.Errorf("input modified to %v", tt.in)
			}
		})
	}
}
