package quota

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		q    Quota
		// want lists substrings the error must contain; none means valid.
		want []string
	}{
		{
			name: "valid",
			q: Quota{
				Namespace: "team-a",
				Min:       Resources{ResourceNvidiaGPU: 4},
				Max:       Resources{ResourceNvidiaGPU: 5, ResourceCPU: 64000},
			},
		},
		{
			name: "min only is valid (max unlimited)",
			q:    Quota{Namespace: "team-a", Min: Resources{ResourceNvidiaGPU: 4}},
		},
		{
			name: "min equal to max is valid",
			q:    Quota{Namespace: "team-a", Min: Resources{ResourceNvidiaGPU: 4}, Max: Resources{ResourceNvidiaGPU: 4}},
		},
		{
			name: "empty namespace",
			q:    Quota{},
			want: []string{"namespace must not be empty"},
		},
		{
			name: "min above max",
			q:    Quota{Namespace: "team-a", Min: Resources{ResourceNvidiaGPU: 5}, Max: Resources{ResourceNvidiaGPU: 4}},
			want: []string{"min[nvidia.com/gpu] = 5 must not be greater than max[nvidia.com/gpu] = 4"},
		},
		{
			name: "negative min",
			q:    Quota{Namespace: "team-a", Min: Resources{ResourceCPU: -1}},
			want: []string{"min[cpu] = -1 must not be negative"},
		},
		{
			name: "negative max",
			q:    Quota{Namespace: "team-a", Max: Resources{ResourceMemory: -2}},
			want: []string{"max[memory] = -2 must not be negative"},
		},
		{
			name: "all problems reported",
			q: Quota{
				Namespace: "team-a",
				Min:       Resources{ResourceNvidiaGPU: 3, ResourceCPU: -5},
				Max:       Resources{ResourceNvidiaGPU: 2},
			},
			want: []string{"min[cpu] = -5 must not be negative", "min[nvidia.com/gpu] = 3 must not be greater than max[nvidia.com/gpu] = 2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.q)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestPreemptionKind(t *testing.T) {
	if got := PreemptionKind("a", "a"); got != "priority" {
		t.Errorf("same namespace: %q, want priority", got)
	}
	if got := PreemptionKind("a", "b"); got != "reclaim" {
		t.Errorf("other namespace: %q, want reclaim", got)
	}
}
