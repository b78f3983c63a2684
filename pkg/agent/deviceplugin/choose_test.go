package deviceplugin

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

var devices = []Device{{0, "GPU-a"}, {1, "GPU-b"}, {2, "GPU-c"}, {3, "GPU-d"}}

func assigned(name string, age int, a gpu.Assignment) *v1.Pod {
	raw, err := gpu.MarshalAssignment(a)
	if err != nil {
		panic(err)
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: "ns", Name: name, UID: types.UID(name),
		CreationTimestamp: metav1.NewTime(time.Unix(int64(1000-age), 0)),
		Annotations:       map[string]string{gpu.AnnotationAssignment: raw},
	}, Status: v1.PodStatus{Phase: v1.PodPending}}
}

func TestIntentsOf(t *testing.T) {
	finished := assigned("done", 9, gpu.Assignment{GPUs: []int{0}})
	finished.Status.Phase = v1.PodSucceeded
	broken := assigned("broken", 1, gpu.Assignment{GPUs: []int{0}})
	broken.Annotations[gpu.AnnotationAssignment] = "{not json"
	tests := []struct {
		name    string
		pods    []*v1.Pod
		want    map[string][]string
		wantBad map[string]string
	}{
		{
			name: "indices map to the node's UUIDs, oldest first",
			pods: []*v1.Pod{assigned("young", 1, gpu.Assignment{GPUs: []int{2, 3}}), assigned("old", 5, gpu.Assignment{GPUs: []int{0}})},
			want: map[string][]string{"old": {"GPU-a"}, "young": {"GPU-c", "GPU-d"}},
		},
		{
			name: "UUIDs in the assignment are used, and must be the node's",
			pods: []*v1.Pod{
				assigned("uuids", 1, gpu.Assignment{GPUs: []int{1}, UUIDs: []string{"GPU-b"}}),
				assigned("elsewhere", 2, gpu.Assignment{GPUs: []int{1}, UUIDs: []string{"GPU-zz"}}),
				assigned("swapped", 3, gpu.Assignment{GPUs: []int{1}, UUIDs: []string{"GPU-c"}}),
			},
			want:    map[string][]string{"uuids": {"GPU-b"}},
			wantBad: map[string]string{"elsewhere": "does not have", "swapped": "node's GPU 1 is GPU-b"},
		},
		{
			name:    "a GPU index the node lacks, a broken annotation, finished and share-only pods",
			pods:    []*v1.Pod{assigned("gpu9", 1, gpu.Assignment{GPUs: []int{9}}), broken, finished, assigned("share", 1, gpu.Assignment{Shares: []gpu.Share{{GPU: 0, Milli: 500}}})},
			want:    map[string][]string{},
			wantBad: map[string]string{"gpu9": "GPU 9, which this node does not have", "broken": ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			intents, bad := intentsOf(tc.pods, ResourceGPU, wholeGPUs(devices), nil)
			got := map[string][]string{}
			var order []string
			for _, in := range intents {
				got[in.pod.Name] = in.ids
				order = append(order, in.pod.Name)
			}
			for name, ids := range tc.want {
				if !slices.Equal(got[name], ids) {
					t.Errorf("pod %s: ids %v, want %v", name, got[name], ids)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("intents %v, want %v", got, tc.want)
			}
			if tc.name == "indices map to the node's UUIDs, oldest first" && !slices.Equal(order, []string{"old", "young"}) {
				t.Errorf("order %v, want oldest first", order)
			}
			if len(bad) != len(tc.wantBad) {
				t.Fatalf("bad %v, want %v", bad, tc.wantBad)
			}
			for _, b := range bad {
				if want, ok := tc.wantBad[b.pod.Name]; !ok || !strings.Contains(b.reason, want) {
					t.Errorf("bad pod %s: %q, want it to say %q", b.pod.Name, b.reason, want)
				}
			}
		})
	}
}

// withContainers gives the pod one container per size, each asking for
// that many GPUs.
func withContainers(p *v1.Pod, sizes ...int64) *v1.Pod {
	for i, n := range sizes {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{
			Name:      fmt.Sprintf("c%d", i),
			Resources: v1.ResourceRequirements{Limits: v1.ResourceList{ResourceGPU: *resource.NewQuantity(n, resource.DecimalSI)}},
		})
	}
	return p
}

func intentsFor(t *testing.T, pods ...*v1.Pod) []intent {
	t.Helper()
	in, bad := intentsOf(pods, ResourceGPU, wholeGPUs(devices), map[types.UID]sets.Set[string]{})
	if len(bad) > 0 {
		t.Fatalf("bad assignments: %v", bad)
	}
	return in
}

func TestPreferred(t *testing.T) {
	twoGPUs := assigned("two", 2, gpu.Assignment{GPUs: []int{2, 3}})
	oneGPU := assigned("one", 1, gpu.Assignment{GPUs: []int{1}})
	all := []string{"GPU-a", "GPU-b", "GPU-c", "GPU-d"}
	tests := []struct {
		name        string
		intents     []intent
		available   []string
		mustInclude []string
		size        int
		want        []string
	}{
		{name: "the pod's assigned devices", intents: intentsFor(t, twoGPUs, oneGPU), available: all, size: 2, want: []string{"GPU-c", "GPU-d"}},
		{name: "the one-GPU pod's device for a one-GPU request, not part of an older pod's", intents: intentsFor(t, twoGPUs, oneGPU), available: all, size: 1, want: []string{"GPU-b"}},
		{name: "one container's part of a pod of two GPU containers", intents: intentsFor(t, withContainers(assigned("multi", 3, gpu.Assignment{GPUs: []int{2, 3}}), 1, 1)), available: all, size: 1, want: []string{"GPU-c"}},
		{name: "a pod whose devices are not available is skipped", intents: intentsFor(t, twoGPUs, oneGPU), available: []string{"GPU-a", "GPU-b"}, size: 1, want: []string{"GPU-b"}},
		{name: "a foreign pod gets devices no Tessera pod waits for", intents: intentsFor(t, twoGPUs, oneGPU), available: []string{"GPU-a", "GPU-b", "GPU-c"}, size: 2, want: nil},
		{name: "a foreign pod on a node without Tessera pods", intents: nil, available: all, size: 3, want: []string{"GPU-a", "GPU-b", "GPU-c"}},
		{name: "must-include devices are honoured", intents: nil, available: all, mustInclude: []string{"GPU-d"}, size: 2, want: []string{"GPU-d", "GPU-a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := preferred(tc.intents, tc.available, tc.mustInclude, tc.size)
			if !slices.Equal(got, tc.want) {
				t.Errorf("preferred %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	twoGPUs := assigned("two", 2, gpu.Assignment{GPUs: []int{2, 3}})
	oneGPU := assigned("one", 1, gpu.Assignment{GPUs: []int{1}})
	tests := []struct {
		name           string
		intents        []intent
		ids            []string
		foreignWaiting bool
		wantPod        string
		wantErr        string
	}{
		{name: "exactly a pod's assignment", intents: intentsFor(t, twoGPUs, oneGPU), ids: []string{"GPU-d", "GPU-c"}, wantPod: "two"},
		{name: "part of a pod's assignment (one container of several)", intents: intentsFor(t, withContainers(assigned("multi", 3, gpu.Assignment{GPUs: []int{2, 3}}), 1, 1), oneGPU), ids: []string{"GPU-c"}, wantPod: "multi"},
		{name: "part of a one-container pod's assignment is refused", intents: intentsFor(t, withContainers(twoGPUs, 2), oneGPU), ids: []string{"GPU-c"}, foreignWaiting: true, wantErr: "GPU-c is assigned to pod ns/two"},
		{name: "another pod's device is refused", intents: intentsFor(t, twoGPUs, oneGPU), ids: []string{"GPU-a", "GPU-b"}, foreignWaiting: true, wantErr: "GPU-b is assigned to pod ns/one"},
		{name: "devices no pod was assigned, no foreign pod waiting: refused", intents: intentsFor(t, twoGPUs), ids: []string{"GPU-a"}, wantErr: "not what any pod of this node was assigned (ns/two: GPU-c,GPU-d)"},
		{name: "devices no pod was assigned, a foreign pod waiting: theirs", intents: intentsFor(t, twoGPUs), ids: []string{"GPU-a"}, foreignWaiting: true},
		{name: "no Tessera pod on the node", intents: nil, ids: []string{"GPU-a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := match(tc.intents, tc.ids, tc.foreignWaiting)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want it to say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if in != nil {
				got = in.pod.Name
			}
			if got != tc.wantPod {
				t.Errorf("matched pod %q, want %q", got, tc.wantPod)
			}
		})
	}
	// A pod whose devices were handed out no longer matches them.
	intents := intentsFor(t, oneGPU)
	intents[0].given.Insert("GPU-b")
	if in, err := match(intents, []string{"GPU-b"}, false); in != nil || err != nil {
		t.Errorf("devices already handed out: matched %v, err %v; want a foreign allocation", in, err)
	}
}
