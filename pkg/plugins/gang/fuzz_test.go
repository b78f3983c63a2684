package gang

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
)

// FuzzPodGroup: a PodGroup's spec and annotations are users'. The group
// derived from any of them drives the gang protocol (PreEnqueue,
// TryAssemble, Permit for each of n members) without a panic, and no
// member is allowed to bind before minMember of them (at least one) have a
// place: the all-or-nothing rule holds for every spec.
func FuzzPodGroup(f *testing.F) {
	f.Add(int32(3), int32(30), "nvidia.com/gpu.clique", "required", "8", uint8(3))
	f.Add(int32(0), int32(-5), "", "", "", uint8(1))
	f.Add(int32(-7), int32(0), "rack", "sometimes", "-2", uint8(4))
	f.Add(int32(2), int32(86401), "x", "Required", "1500m", uint8(1))
	f.Fuzz(func(t *testing.T, minMember, timeout int32, topoKey, topoMode, minGPU string, members uint8) {
		pg := &schedv1alpha1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "g", CreationTimestamp: metav1.Now(),
				Annotations: map[string]string{AnnotationTopologyKey: topoKey, AnnotationTopology: topoMode}},
			Spec: schedv1alpha1.PodGroupSpec{MinMember: minMember, ScheduleTimeoutSeconds: &timeout},
		}
		if len(minGPU) <= 8 && !strings.ContainsAny(minGPU, "eE") {
			if q, err := resource.ParseQuantity(minGPU); err == nil {
				pg.Spec.MinResources = v1.ResourceList{"nvidia.com/gpu": q}
			}
		}
		g := groupOf(pg)
		m := gangcore.NewManager(gangcore.Config{DefaultTimeout: 30 * time.Second, BackoffInitial: time.Second, BackoffMax: time.Minute, StarvationAfter: time.Minute})
		m.SetGroup(g)
		n := int(members % 20)
		now := time.Now()
		for i := 0; i < n; i++ {
			m.AddPod(gangcore.PodRef{UID: fmt.Sprint(i), Name: fmt.Sprintf("ns/p%d", i), Group: g.Key, Created: now})
		}
		need := max(int(minMember), 1)
		reserved := 0
		for i := 0; i < n; i++ {
			uid := fmt.Sprint(i)
			if !m.PreEnqueue(uid, now).Allow {
				continue
			}
			if a := m.TryAssemble(uid, now); !a.OK {
				continue
			}
			reserved++
			r := m.Permit(uid, "node", now)
			if r.Allow && reserved < need {
				t.Fatalf("member %d allowed to bind with %d of minMember %d placed (spec %+v)", i, reserved, minMember, pg.Spec)
			}
		}
	})
}
