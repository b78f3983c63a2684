package gpu

import (
	"slices"
	"testing"
)

func TestRequestIsZero(t *testing.T) {
	tests := []struct {
		r    Request
		want bool
	}{
		{Request{}, true},
		{Request{Locality: LocalityRequired}, true},
		{Request{MIG: []MIGRequest{{Profile: "1g.5gb", Count: 0}}}, true},
		{Request{GPUs: 1}, false},
		{Request{ShareMilli: 100}, false},
		{Request{MIG: []MIGRequest{{Profile: "1g.5gb", Count: 1}}}, false},
	}
	for _, tt := range tests {
		if got := tt.r.IsZero(); got != tt.want {
			t.Errorf("%+v.IsZero() = %v", tt.r, got)
		}
	}
}

func TestGPUEquivalentMilli(t *testing.T) {
	tests := []struct {
		r    Request
		want int64
	}{
		{Request{}, 0},
		{Request{GPUs: 3}, 3000},
		{Request{ShareMilli: 250}, 250},
		{Request{MIG: []MIGRequest{{Profile: "3g.40gb", Count: 1}}}, 428},
		{Request{MIG: []MIGRequest{{Profile: "1g.5gb", Count: 7}}}, 1000},
		{Request{MIG: []MIGRequest{{Profile: "4g.20gb", Count: 1}, {Profile: "3g.20gb", Count: 1}}}, 1000},
		{Request{GPUs: 1, ShareMilli: 500, MIG: []MIGRequest{{Profile: "2g.20gb", Count: 2}}}, 1000 + 500 + 571},
		// One rule with quotas (EquivalentMilli): an unknown profile
		// weighs a whole GPU per instance.
		{Request{MIG: []MIGRequest{{Profile: "banana", Count: 2}}}, 2000},
		{Request{MIG: []MIGRequest{{Profile: "9g.99gb", Count: 1}}}, 1000},
	}
	for _, tt := range tests {
		if got := tt.r.GPUEquivalentMilli(); got != tt.want {
			t.Errorf("%+v.GPUEquivalentMilli() = %d, want %d", tt.r, got, tt.want)
		}
	}
}

func TestRequestValidate(t *testing.T) {
	tests := []struct {
		r    Request
		want []string
	}{
		{r: Request{GPUs: 2, ShareMilli: 999, MIG: []MIGRequest{{"1g.5gb", 3}}}},
		{r: Request{GPUs: -1}, want: []string{"gpus = -1"}},
		{r: Request{ShareMilli: 1000}, want: []string{"shareMilli = 1000"}},
		{r: Request{ShareMilli: -5}, want: []string{"shareMilli = -5"}},
		{r: Request{Locality: 3}, want: []string{"locality = 3"}},
		{r: Request{MIG: []MIGRequest{{"1g.5gb", -1}}}, want: []string{"mig[1g.5gb].count = -1"}},
		{r: Request{MIG: []MIGRequest{{"huge", 1}}}, want: []string{"mig.profile = huge"}},
	}
	for _, tt := range tests {
		err := tt.r.Validate()
		wantErr(t, err, tt.want...)
		if err != nil {
			if fe, ok := err.(FitError); !ok || fe.Reason() != "invalid GPU request" {
				t.Errorf("Validate error %v is not an InvalidRequest", err)
			}
		}
	}
}

func TestMIGUnitsOrder(t *testing.T) {
	r := Request{MIG: []MIGRequest{{"1g.10gb", 2}, {"7g.80gb", 1}, {"3g.40gb", 1}, {"1g.20gb", 1}, {"2g.20gb", 0}}}
	want := []string{"7g.80gb", "3g.40gb", "1g.10gb", "1g.10gb", "1g.20gb"}
	if got := r.migUnits(); !slices.Equal(got, want) {
		t.Errorf("migUnits() = %v, want %v", got, want)
	}
}

func TestLocalityStrings(t *testing.T) {
	if LocalityPreferred.String() != "preferred" || LocalityRequired.String() != "required" || Locality(5).String() != "Locality(5)" {
		t.Errorf("Locality strings wrong")
	}
	if LocalityNone.String() != "none" || LocalityNUMA.String() != "numa" || LocalityDomain.String() != "domain" {
		t.Errorf("LocalityLevel strings wrong")
	}
}
