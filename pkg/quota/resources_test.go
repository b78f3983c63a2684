package quota

import (
	"maps"
	"testing"
)

func TestResourcesArithmetic(t *testing.T) {
	tests := []struct {
		name    string
		a, b    Resources
		wantAdd Resources
		wantSub Resources
	}{
		{
			name:    "both nil",
			wantAdd: Resources{},
			wantSub: Resources{},
		},
		{
			name:    "disjoint keys",
			a:       Resources{ResourceCPU: 500},
			b:       Resources{ResourceNvidiaGPU: 2},
			wantAdd: Resources{ResourceCPU: 500, ResourceNvidiaGPU: 2},
			wantSub: Resources{ResourceCPU: 500, ResourceNvidiaGPU: -2},
		},
		{
			name:    "shared keys",
			a:       Resources{ResourceCPU: 500, ResourceMemory: 1 << 30},
			b:       Resources{ResourceCPU: 200, ResourceMemory: 1 << 20},
			wantAdd: Resources{ResourceCPU: 700, ResourceMemory: 1<<30 + 1<<20},
			wantSub: Resources{ResourceCPU: 300, ResourceMemory: 1<<30 - 1<<20},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.a.Clone(), tt.b.Clone()
			if got := tt.a.Add(tt.b); !maps.Equal(got, tt.wantAdd) {
				t.Errorf("Add = %v, want %v", got, tt.wantAdd)
			}
			if got := tt.a.Sub(tt.b); !maps.Equal(got, tt.wantSub) {
				t.Errorf("Sub = %v, want %v", got, tt.wantSub)
			}
			if !maps.Equal(a, tt.a) || !maps.Equal(b, tt.b) {
				t.Errorf("operands modified: %v, %v", tt.a, tt.b)
			}
		})
	}
}

func TestResourcesClone(t *testing.T) {
	if Resources(nil).Clone() != nil {
		t.Errorf("Clone of nil is not nil")
	}
	r := Resources{ResourceCPU: 1}
	c := r.Clone()
	c[ResourceCPU] = 2
	if r[ResourceCPU] != 1 {
		t.Errorf("Clone aliases its receiver")
	}
}

func TestResourcesLessOrEqual(t *testing.T) {
	tests := []struct {
		name  string
		r     Resources
		limit Resources
		want  bool
	}{
		{name: "nil within nil", want: true},
		{name: "no limit keys means unlimited", r: Resources{ResourceNvidiaGPU: 100}, limit: Resources{}, want: true},
		{name: "key missing from limit is unconstrained", r: Resources{ResourceNvidiaGPU: 100, ResourceCPU: 1}, limit: Resources{ResourceCPU: 1}, want: true},
		{name: "key missing from r counts as zero", r: Resources{}, limit: Resources{ResourceNvidiaGPU: 0}, want: true},
		{name: "equal", r: Resources{ResourceNvidiaGPU: 4}, limit: Resources{ResourceNvidiaGPU: 4}, want: true},
		{name: "above on one key", r: Resources{ResourceNvidiaGPU: 5, ResourceCPU: 1}, limit: Resources{ResourceNvidiaGPU: 4, ResourceCPU: 10}, want: false},
		{name: "zero limit rejects any use", r: Resources{ResourceNvidiaGPU: 1}, limit: Resources{ResourceNvidiaGPU: 0}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.LessOrEqual(tt.limit); got != tt.want {
				t.Errorf("%v.LessOrEqual(%v) = %v, want %v", tt.r, tt.limit, got, tt.want)
			}
		})
	}
}

func TestResourcesIsZero(t *testing.T) {
	tests := []struct {
		r    Resources
		want bool
	}{
		{r: nil, want: true},
		{r: Resources{}, want: true},
		{r: Resources{ResourceCPU: 0, ResourceNvidiaGPU: 0}, want: true},
		{r: Resources{ResourceCPU: 0, ResourceNvidiaGPU: 1}, want: false},
		{r: Resources{ResourceCPU: -1}, want: false},
	}
	for _, tt := range tests {
		if got := tt.r.IsZero(); got != tt.want {
			t.Errorf("%v.IsZero() = %v, want %v", tt.r, got, tt.want)
		}
	}
}

func TestResourcesString(t *testing.T) {
	tests := []struct {
		r    Resources
		want string
	}{
		{r: nil, want: "{}"},
		{r: Resources{ResourceNvidiaGPU: 2, ResourceCPU: 500, ResourceMemory: -1}, want: "{cpu=500, memory=-1, nvidia.com/gpu=2}"},
	}
	for _, tt := range tests {
		for range 5 { // map order is random; the output must not be
			if got := tt.r.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		}
	}
}

func TestAddIntoDropsZeros(t *testing.T) {
	var r Resources
	addInto(&r, Resources{ResourceCPU: 5, ResourceNvidiaGPU: 1}, 1)
	addInto(&r, Resources{ResourceNvidiaGPU: 1}, -1)
	if want := (Resources{ResourceCPU: 5}); !maps.Equal(r, want) {
		t.Errorf("got %v, want %v", r, want)
	}
}
