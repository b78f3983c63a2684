package gpu

import (
	"strings"
	"testing"
)

func TestMIGSlices(t *testing.T) {
	tests := []struct {
		profile string
		want    int64
		wantErr string
	}{
		{profile: "1g.10gb", want: 1},
		{profile: "3g.40gb", want: 3},
		{profile: "7g.80gb", want: 7},
		{profile: "1g.10gb+me", want: 1},
		{profile: "nvidia.com/mig-4g.40gb", want: 4},
		{profile: "8g.80gb", wantErr: "must be 1 to 7"},
		{profile: "0g.5gb", wantErr: "must be 1 to 7"},
		{profile: "xg.5gb", wantErr: "must be 1 to 7"},
		{profile: "3g.40", wantErr: "not of the form"},
		{profile: "3g.0gb", wantErr: "not a positive number"},
		{profile: "", wantErr: "not of the form"},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			got, err := MIGSlices(tt.profile)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.profile) {
					t.Fatalf("MIGSlices(%q) error = %v, want one naming the profile and containing %q", tt.profile, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("MIGSlices(%q) = %d, %v, want %d", tt.profile, got, err, tt.want)
			}
		})
	}
}

func TestEquivalentMilli(t *testing.T) {
	tests := []struct {
		name  string
		whole int64
		mig   map[string]int64
		share int64
		want  int64
	}{
		{name: "nothing", want: 0},
		{name: "whole GPUs", whole: 4, want: 4000},
		{name: "seven 1g instances are one GPU", mig: map[string]int64{"1g.10gb": 7}, want: 1000},
		{name: "3g plus 4g is one GPU", mig: map[string]int64{"3g.40gb": 1, "4g.40gb": 1}, want: 1000},
		{name: "7g is one GPU", mig: map[string]int64{"nvidia.com/mig-7g.80gb": 1}, want: 1000},
		{name: "one 1g rounds down", mig: map[string]int64{"1g.10gb": 1}, want: 142},
		{name: "one 3g rounds down", mig: map[string]int64{"3g.40gb": 1}, want: 428},
		{name: "mixed MIG sums before rounding", mig: map[string]int64{"1g.10gb": 3, "2g.20gb": 2}, want: 1000},
		{name: "shares are milli", share: 250, want: 250},
		{name: "whole, MIG and share", whole: 2, mig: map[string]int64{"1g.10gb": 14}, share: 500, want: 4500},
		{name: "unknown profile counts as a whole GPU", mig: map[string]int64{"weird": 2}, want: 2000},
		{name: "too many compute slices counts as a whole GPU", mig: map[string]int64{"nvidia.com/mig-9g.99gb": 1}, want: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EquivalentMilli(tt.whole, tt.mig, tt.share); got != tt.want {
				t.Errorf("EquivalentMilli(%d, %v, %d) = %d, want %d", tt.whole, tt.mig, tt.share, got, tt.want)
			}
		})
	}
}

// TestEquivalentMilliPerPodNeverOvercharge checks the reason for rounding
// down: a GPU sliced into instances that are charged one pod at a time still
// costs at most 1000.
func TestEquivalentMilliPerPodNeverOvercharge(t *testing.T) {
	for _, slicing := range [][]string{
		{"1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb"},
		{"3g.40gb", "4g.40gb"},
		{"2g.20gb", "2g.20gb", "3g.40gb"},
		{"1g.10gb", "2g.20gb", "4g.40gb"},
	} {
		var total int64
		for _, profile := range slicing {
			total += EquivalentMilli(0, map[string]int64{profile: 1}, 0)
		}
		if total > 1000 || total < 1000-int64(len(slicing)) {
			t.Errorf("pods %v are charged %d in total, want within (1000-%d, 1000]", slicing, total, len(slicing))
		}
	}
}
