package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

const testNode = "gpu-node-1"

// twoH100 is a small valid topology; mig changes GPU 1's MIG layout so that
// tests can tell two specs apart.
func twoH100(mig *tesserav1alpha1.MIGConfig) tesserav1alpha1.NodeGPUTopologySpec {
	return tesserav1alpha1.NodeGPUTopologySpec{GPUs: []tesserav1alpha1.GPUDevice{
		{Index: 0, UUID: "GPU-0", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, NUMANode: int32p(0), NVLinkDomain: "nvlink-0"},
		{Index: 1, UUID: "GPU-1", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, NUMANode: int32p(0), NVLinkDomain: "nvlink-0", MIG: mig},
	}}
}

// TestPublisherSync drives one Sync against client-go's fake dynamic client
// from a given published state and checks what it wrote.
func TestPublisherSync(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	info := Info{DriverVersion: "550.54.15"}
	spec := twoH100(nil)
	changed := twoH100(&tesserav1alpha1.MIGConfig{Mode: tesserav1alpha1.MIGStatic, Instances: []tesserav1alpha1.MIGInstance{{Profile: "3g.40gb", Start: 0}}})
	empty := tesserav1alpha1.NodeGPUTopologySpec{}
	invalid := twoH100(&tesserav1alpha1.MIGConfig{Mode: tesserav1alpha1.MIGStatic, Instances: []tesserav1alpha1.MIGInstance{{Profile: "3g.40gb", Start: 0}, {Profile: "3g.40gb", Start: 2}}})
	discoverErr := errors.New("NVML: GPU is lost")

	tests := []struct {
		name string
		// published is the object before Sync (nil: none), checked at
		// lastChecked t0 by a driver and agent of version info/"v1".
		published *tesserav1alpha1.NodeGPUTopologySpec
		// discovered is what discovery returns.
		discovered tesserav1alpha1.NodeGPUTopologySpec
		driver     string // driver version discovered; "" means info's
		err        error  // discovery error
		after      time.Duration
		wantResult Result
		wantErr    error // errors.Is target; nil: no error unless wantAnyErr
		wantAnyErr bool
		wantWrite  string // "create", "update" or "" for none
		wantSpec   *tesserav1alpha1.NodeGPUTopologySpec
		wantCheck  time.Time
	}{
		{
			name:       "creates the object",
			discovered: spec,
			wantResult: ResultCreated,
			wantWrite:  "create",
			wantSpec:   &spec,
			wantCheck:  t0,
		},
		{
			name:       "no-op when nothing changed",
			published:  &spec,
			discovered: spec,
			after:      time.Minute,
			wantResult: ResultUnchanged,
			wantSpec:   &spec,
			wantCheck:  t0,
		},
		{
			name:       "refreshes lastChecked after the refresh interval",
			published:  &spec,
			discovered: spec,
			after:      DefaultRefreshInterval + time.Second,
			wantResult: ResultRefreshed,
			wantWrite:  "update",
			wantSpec:   &spec,
			wantCheck:  t0.Add(DefaultRefreshInterval + time.Second),
		},
		{
			name:       "refreshes a lastChecked from the future",
			published:  &spec,
			discovered: spec,
			after:      -time.Hour,
			wantResult: ResultRefreshed,
			wantWrite:  "update",
			wantSpec:   &spec,
			wantCheck:  t0.Add(-time.Hour),
		},
		{
			name:       "updates a changed spec",
			published:  &spec,
			discovered: changed,
			after:      time.Minute,
			wantResult: ResultUpdated,
			wantWrite:  "update",
			wantSpec:   &changed,
			wantCheck:  t0.Add(time.Minute),
		},
		{
			name:       "updates a changed driver version",
			published:  &spec,
			discovered: spec,
			driver:     "560.28.03",
			after:      time.Minute,
			wantResult: ResultUpdated,
			wantWrite:  "update",
			wantSpec:   &spec,
			wantCheck:  t0.Add(time.Minute),
		},
		{
			name:       "keeps a good object when discovery fails",
			published:  &spec,
			err:        discoverErr,
			after:      time.Hour,
			wantResult: ResultKept,
			wantErr:    discoverErr,
			wantSpec:   &spec,
			wantCheck:  t0,
		},
		{
			name:       "keeps a good object when no GPUs are found",
			published:  &spec,
			discovered: empty,
			after:      time.Hour,
			wantResult: ResultKept,
			wantErr:    ErrNoGPUs,
			wantSpec:   &spec,
			wantCheck:  t0,
		},
		{
			name:       "keeps a good object when discovery is invalid",
			published:  &spec,
			discovered: invalid,
			wantResult: ResultKept,
			wantAnyErr: true,
			wantSpec:   &spec,
			wantCheck:  t0,
		},
		{
			name:       "creates nothing when discovery fails",
			err:        discoverErr,
			wantResult: ResultSkipped,
			wantErr:    discoverErr,
		},
		{
			name:       "creates no empty object",
			discovered: empty,
			wantResult: ResultSkipped,
			wantErr:    ErrNoGPUs,
		},
		{
			name:       "replaces an empty object",
			published:  &empty,
			discovered: spec,
			after:      time.Minute,
			wantResult: ResultUpdated,
			wantWrite:  "update",
			wantSpec:   &spec,
			wantCheck:  t0.Add(time.Minute),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var objs []runtime.Object
			if tc.published != nil {
				obj := NewObject(testNode, *tc.published, info, "v1", metav1.NewTime(t0))
				obj.Annotations = map[string]string{"example.com/keep": "me"}
				u, err := ToUnstructured(obj)
				if err != nil {
					t.Fatal(err)
				}
				objs = append(objs, u)
			}
			client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
				map[schema.GroupVersionResource]string{tesserav1alpha1.NodeGPUTopologyResource: "NodeGPUTopologyList"}, objs...)
			discovered := info
			if tc.driver != "" {
				discovered.DriverVersion = tc.driver
			}
			p := &Publisher{
				Client:       client,
				NodeName:     testNode,
				AgentVersion: "v1",
				Discover: func() (tesserav1alpha1.NodeGPUTopologySpec, Info, error) {
					return tc.discovered, discovered, tc.err
				},
				Clock: testingclock.NewFakePassiveClock(t0.Add(tc.after)),
			}

			res, err := p.Sync(context.Background())
			if res != tc.wantResult {
				t.Errorf("result %q, want %q", res, tc.wantResult)
			}
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("error %v, want %v", err, tc.wantErr)
			case tc.wantErr == nil && !tc.wantAnyErr && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.wantAnyErr && err == nil:
				t.Errorf("no error, want one")
			}
			if got := writes(client.Actions()); got != tc.wantWrite {
				t.Errorf("wrote %q, want %q", got, tc.wantWrite)
			}

			u, err := client.Resource(tesserav1alpha1.NodeGPUTopologyResource).Get(context.Background(), testNode, metav1.GetOptions{})
			if tc.wantSpec == nil {
				if err == nil {
					t.Errorf("an object was published: %v", u.Object)
				}
				return
			}
			if err != nil {
				t.Fatalf("reading the object: %v", err)
			}
			obj, err := fromUnstructured(u)
			if err != nil {
				t.Fatal(err)
			}
			if !apiequality.Semantic.DeepEqual(obj.Spec, *tc.wantSpec) {
				t.Errorf("published spec %+v, want %+v", obj.Spec, *tc.wantSpec)
			}
			if !obj.Status.LastChecked.Time.Equal(tc.wantCheck) {
				t.Errorf("lastChecked %v, want %v", obj.Status.LastChecked.Time, tc.wantCheck)
			}
			if obj.Status.GPUCount != int32(len(tc.wantSpec.GPUs)) {
				t.Errorf("status.gpuCount %d, want %d", obj.Status.GPUCount, len(tc.wantSpec.GPUs))
			}
			if tc.published != nil && obj.Annotations["example.com/keep"] != "me" {
				t.Errorf("an update dropped the object's annotations: %v", obj.Annotations)
			}
		})
	}
}

// TestPublisherSequence runs Syncs one after another against the same fake
// client, as Run does, to check that the agent settles: one create, then
// no writes until something changes or the refresh interval passes.
func TestPublisherSequence(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := testingclock.NewFakePassiveClock(t0)
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{tesserav1alpha1.NodeGPUTopologyResource: "NodeGPUTopologyList"})
	spec := twoH100(nil)
	var discoverErr error
	p := &Publisher{
		Client:   client,
		NodeName: testNode,
		Discover: func() (tesserav1alpha1.NodeGPUTopologySpec, Info, error) { return spec, Info{}, discoverErr },
		Clock:    clock,
	}
	steps := []struct {
		name  string
		at    time.Duration
		setup func()
		want  Result
	}{
		{name: "first check", at: 0, want: ResultCreated},
		{name: "a minute later", at: time.Minute, want: ResultUnchanged},
		{name: "nine minutes later", at: 9 * time.Minute, want: ResultUnchanged},
		{name: "driver unloaded", at: 10 * time.Minute, setup: func() { discoverErr = errors.New("driver not loaded") }, want: ResultKept},
		{name: "driver back", at: 11 * time.Minute, setup: func() { discoverErr = nil }, want: ResultRefreshed},
		{name: "MIG reconfigured", at: 12 * time.Minute, setup: func() {
			spec = twoH100(&tesserav1alpha1.MIGConfig{Mode: tesserav1alpha1.MIGStatic, Instances: []tesserav1alpha1.MIGInstance{{Profile: "7g.80gb", Start: 0}}})
		}, want: ResultUpdated},
		{name: "settled", at: 13 * time.Minute, want: ResultUnchanged},
	}
	for _, s := range steps {
		if s.setup != nil {
			s.setup()
		}
		clock.SetTime(t0.Add(s.at))
		if res, _ := p.Sync(context.Background()); res != s.want {
			t.Errorf("%s: result %q, want %q", s.name, res, s.want)
		}
	}
}

// writes summarises the write verbs among a fake client's actions.
func writes(actions []clienttesting.Action) string {
	out := ""
	for _, a := range actions {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			if out != "" {
				out += ","
			}
			out += v
		}
	}
	return out
}
