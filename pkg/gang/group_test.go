package gang

import (
	"testing"
	"time"
)

func TestGroupKey(t *testing.T) {
	tests := []struct {
		key             GroupKey
		namespace, name string
	}{
		{key: NewGroupKey("team-a", "ddp"), namespace: "team-a", name: "ddp"},
		{key: "no-slash", namespace: "", name: "no-slash"},
		{key: "a/b/c", namespace: "a", name: "b/c"},
	}
	for _, tt := range tests {
		t.Run(string(tt.key), func(t *testing.T) {
			if got := tt.key.Namespace(); got != tt.namespace {
				t.Errorf("Namespace() = %q, want %q", got, tt.namespace)
			}
			if got := tt.key.Name(); got != tt.name {
				t.Errorf("Name() = %q, want %q", got, tt.name)
			}
		})
	}
	if got := NewGroupKey("team-a", "ddp").String(); got != "team-a/ddp" {
		t.Errorf("String() = %q", got)
	}
}

func TestConfigBackoff(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		failures []int
		want     []time.Duration
	}{
		{
			name:     "doubling then capped",
			cfg:      testConfig,
			failures: []int{0, 1, 2, 3, 4, 5, 6, 100},
			want:     []time.Duration{0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second},
		},
		{
			name:     "cap that is not a power of two",
			cfg:      Config{BackoffInitial: 3 * time.Second, BackoffMax: 10 * time.Second},
			failures: []int{1, 2, 3, 4},
			want:     []time.Duration{3 * time.Second, 6 * time.Second, 10 * time.Second, 10 * time.Second},
		},
		{
			name:     "zero config uses the plugin defaults (1s to 60s)",
			cfg:      Config{},
			failures: []int{1, 6, 7, 1000},
			want:     []time.Duration{time.Second, 32 * time.Second, time.Minute, time.Minute},
		},
		{
			name:     "no back-off at all",
			cfg:      Config{NoBackoff: true, BackoffInitial: 5 * time.Second},
			failures: []int{0, 1, 2, 100},
			want:     []time.Duration{0, 0, 0, 0},
		},
		{
			name:     "max below initial is raised to initial",
			cfg:      Config{BackoffInitial: 5 * time.Second, BackoffMax: time.Second},
			failures: []int{1, 2},
			want:     []time.Duration{5 * time.Second, 5 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, f := range tt.failures {
				if got := tt.cfg.Backoff(f); got != tt.want[i] {
					t.Errorf("Backoff(%d) = %v, want %v", f, got, tt.want[i])
				}
			}
		})
	}
}

func TestGroupTimeout(t *testing.T) {
	m := NewManager(testConfig)
	m.SetGroup(Group{Key: key("own"), MinMember: 2, Timeout: 3 * time.Second})
	addMembers(m, "own", 0, 2, 0)
	addGroup(m, "default", 2, 2, 0, 0)

	mustAssemble(t, m, "own-0", t0, true)
	if _, deadline, _ := m.Holder(); !deadline.Equal(at(3 * time.Second)) {
		t.Errorf("deadline with Timeout 3s = %v, want t0+3s", deadline)
	}
	m.Reject(key("own"), t0, "test")
	mustAssemble(t, m, "default-0", t0, true)
	if _, deadline, _ := m.Holder(); !deadline.Equal(at(10 * time.Second)) {
		t.Errorf("deadline with no Timeout = %v, want t0+DefaultTimeout", deadline)
	}
}
