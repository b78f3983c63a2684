package gpuplacement

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestDecodeArgs(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		check   func(*testing.T, *Args)
		wantErr []string
	}{
		{
			name: "defaults",
			raw:  ``,
			check: func(t *testing.T, a *Args) {
				if a.ScoringStrategy != FragmentationAware || *a.TopologyWeight != 20 || *a.DemandHalfLife != 1000 {
					t.Errorf("unexpected defaults: %+v", a)
				}
			},
		},
		{
			name: "explicit values kept",
			raw:  `{"scoringStrategy":"BinPack","topologyWeight":0,"demandHalfLife":7}`,
			check: func(t *testing.T, a *Args) {
				if a.ScoringStrategy != BinPack || *a.TopologyWeight != 0 || *a.DemandHalfLife != 7 {
					t.Errorf("values not kept: %+v", a)
				}
			},
		},
		{
			name:    "bad strategy names field and value",
			raw:     `{"scoringStrategy":"Random"}`,
			wantErr: []string{`pluginConfig[GPUPlacement].args.scoringStrategy`, `"Random"`},
		},
		{
			name:    "weight out of range",
			raw:     `{"topologyWeight":101}`,
			wantErr: []string{`pluginConfig[GPUPlacement].args.topologyWeight`, `101`},
		},
		{
			name:    "half-life out of range",
			raw:     `{"demandHalfLife":0}`,
			wantErr: []string{`pluginConfig[GPUPlacement].args.demandHalfLife`, `must be between 1`},
		},
		{
			name:    "typo rejected",
			raw:     `{"scoringStrategie":"BinPack"}`,
			wantErr: []string{`pluginConfig[GPUPlacement].args`, `unknown field "scoringStrategie"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := DecodeArgs(&runtime.Unknown{Raw: []byte(tc.raw)})
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("expected an error, got args %+v", a)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tc.check(t, a)
		})
	}
}
