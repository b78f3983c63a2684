package quota

import (
	"maps"
	"strings"
	"testing"
	"time"
)

// gpus returns a request or quota of n whole GPUs.
func gpus(n int64) Resources {
	return Resources{ResourceNvidiaGPU: n}
}

// gpuPod returns a pod of namespace ns using n GPUs, started start seconds
// after an arbitrary epoch.
func gpuPod(uid, ns string, n int64, priority int32, start int) PodUsage {
	return PodUsage{
		UID:       uid,
		Namespace: ns,
		Priority:  priority,
		StartTime: time.Unix(1_700_000_000+int64(start), 0),
		Resources: gpus(n),
	}
}

// newTestTracker returns a tracker with the given GPU capacity and quotas
// named "<namespace>/quota".
func newTestTracker(t *testing.T, capacity int64, quotas ...Quota) *Tracker {
	t.Helper()
	tr := NewTracker()
	tr.SetClusterCapacity(gpus(capacity))
	for _, q := range quotas {
		if err := tr.SetQuota(q.Namespace+"/quota", q); err != nil {
			t.Fatalf("SetQuota(%s): %v", q.Namespace, err)
		}
	}
	return tr
}

// gpuQuota returns a quota over GPUs only.
func gpuQuota(ns string, lo, hi int64) Quota {
	return Quota{Namespace: ns, Min: gpus(lo), Max: gpus(hi)}
}

func TestSetQuotaRejectsDuplicates(t *testing.T) {
	tr := NewTracker()
	tr.SetClusterCapacity(gpus(8))
	if err := tr.SetQuota("team-a/first", gpuQuota("team-a", 2, 4)); err != nil {
		t.Fatalf("first quota: %v", err)
	}
	err := tr.SetQuota("team-a/second", gpuQuota("team-a", 1, 8))
	if err == nil {
		t.Fatalf("second quota for the namespace accepted")
	}
	for _, want := range []string{`"team-a"`, `"team-a/first"`, `"team-a/second"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	d := tr.CheckAdmit("team-a", gpus(1))
	if d.Admit || d.Reclaimable || !d.Governed {
		t.Errorf("misconfigured namespace decision = %+v, want a governed, non-reclaimable reject", d)
	}
	if !strings.Contains(d.Reason, `"team-a/first"`) || !strings.Contains(d.Reason, `"team-a/second"`) {
		t.Errorf("reason %q does not name both objects", d.Reason)
	}
	fitsAnything := func([]PodUsage) bool { return true }
	if v, ok := tr.SelectVictims(gpuPod("p", "team-a", 1, 100, 0), nil, fitsAnything); ok || v != nil {
		t.Errorf("SelectVictims for a misconfigured namespace = %v, %v; want nil, false", v, ok)
	}

	tr.DeleteQuota("team-a/second")
	if d := tr.CheckAdmit("team-a", gpus(1)); !d.Admit {
		t.Errorf("after deleting the duplicate: %+v, want admit", d)
	}
	if d := tr.CheckAdmit("team-a", gpus(5)); d.Admit {
		t.Errorf("the remaining quota (max 4) is not enforced: %+v", d)
	}
}

func TestSetQuotaInvalidHoldsNamespace(t *testing.T) {
	tr := NewTracker()
	err := tr.SetQuota("team-a/quota", gpuQuota("team-a", 5, 4))
	if err == nil || !strings.Contains(err.Error(), "min[nvidia.com/gpu] = 5") {
		t.Fatalf("SetQuota error = %v, want one naming min[nvidia.com/gpu] = 5", err)
	}
	d := tr.CheckAdmit("team-a", gpus(1))
	if d.Admit || !strings.Contains(d.Reason, `"team-a/quota" is invalid`) {
		t.Errorf("decision = %+v, want a reject naming the invalid object", d)
	}
	if err := tr.SetQuota("team-a/quota", gpuQuota("team-a", 4, 5)); err != nil {
		t.Fatalf("fixing the quota: %v", err)
	}
	if d := tr.CheckAdmit("team-a", gpus(1)); !d.Admit {
		t.Errorf("after the fix: %+v, want admit", d)
	}
}

func TestSetQuotaChangesNamespace(t *testing.T) {
	tr := NewTracker()
	if err := tr.SetQuota("q", gpuQuota("team-a", 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetQuota("q", gpuQuota("team-b", 0, 1)); err != nil {
		t.Fatalf("moving the object: %v", err)
	}
	if d := tr.CheckAdmit("team-a", gpus(10)); !d.Admit || d.Governed {
		t.Errorf("team-a after the move: %+v, want ungoverned", d)
	}
	if d := tr.CheckAdmit("team-b", gpus(10)); d.Admit {
		t.Errorf("team-b after the move: %+v, want governed reject", d)
	}
	if tr.Governs("team-a") || !tr.Governs("team-b") {
		t.Errorf("Governs: team-a %v, team-b %v; want only team-b governed after the move", tr.Governs("team-a"), tr.Governs("team-b"))
	}
	if err := tr.SetQuota("bad", gpuQuota("team-c", 5, 4)); err == nil || !tr.Governs("team-c") {
		t.Errorf("an invalid quota must still govern its namespace (its pods are held, not free)")
	}
}

func TestAddPodIsIdempotent(t *testing.T) {
	tests := []struct {
		name   string
		ops    func(tr *Tracker)
		wantA  Resources
		wantB  Resources
		hasPod bool
	}{
		{
			name:  "same UID twice counts once",
			ops:   func(tr *Tracker) { tr.AddPod(gpuPod("p1", "a", 2, 0, 0)); tr.AddPod(gpuPod("p1", "a", 2, 0, 0)) },
			wantA: gpus(2),
		},
		{
			name:  "update replaces",
			ops:   func(tr *Tracker) { tr.AddPod(gpuPod("p1", "a", 2, 0, 0)); tr.AddPod(gpuPod("p1", "a", 3, 0, 0)) },
			wantA: gpus(3),
		},
		{
			name:  "update may move namespace",
			ops:   func(tr *Tracker) { tr.AddPod(gpuPod("p1", "a", 2, 0, 0)); tr.AddPod(gpuPod("p1", "b", 1, 0, 0)) },
			wantB: gpus(1),
		},
		{
			name: "remove twice and remove unknown",
			ops: func(tr *Tracker) {
				tr.AddPod(gpuPod("p1", "a", 2, 0, 0))
				tr.AddPod(gpuPod("p2", "a", 1, 0, 0))
				tr.RemovePod("p1")
				tr.RemovePod("p1")
				tr.RemovePod("nope")
			},
			wantA: gpus(1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker()
			tt.ops(tr)
			if got := tr.Used("a"); !maps.Equal(got, tt.wantA) {
				t.Errorf("Used(a) = %v, want %v", got, tt.wantA)
			}
			if got := tr.Used("b"); !maps.Equal(got, tt.wantB) {
				t.Errorf("Used(b) = %v, want %v", got, tt.wantB)
			}
		})
	}
}

func TestTrackerCopiesInputs(t *testing.T) {
	tr := NewTracker()
	q := gpuQuota("a", 1, 2)
	if err := tr.SetQuota("a/quota", q); err != nil {
		t.Fatal(err)
	}
	p := gpuPod("p1", "a", 1, 0, 0)
	tr.AddPod(p)
	q.Max[ResourceNvidiaGPU] = 100
	p.Resources[ResourceNvidiaGPU] = 100
	if got := tr.Used("a"); got[ResourceNvidiaGPU] != 1 {
		t.Errorf("usage follows the caller's map: %v", got)
	}
	if d := tr.CheckAdmit("a", gpus(2)); d.Admit {
		t.Errorf("max follows the caller's map: %+v", d)
	}
	tr.Used("a")[ResourceNvidiaGPU] = 50
	if got := tr.Used("a"); got[ResourceNvidiaGPU] != 1 {
		t.Errorf("Used returns the tracker's own map: %v", got)
	}
}

func TestMisconfiguredAndHasPodBelow(t *testing.T) {
	tr := NewTracker()
	if err := tr.SetQuota("ok/q", Quota{Namespace: "ok", Min: Resources{ResourceNvidiaGPU: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetQuota("bad/q", Quota{Namespace: "bad", Min: Resources{ResourceNvidiaGPU: 2}, Max: Resources{ResourceNvidiaGPU: 1}}); err == nil {
		t.Fatal("min above max accepted")
	}
	for ns, want := range map[string]bool{"ok": false, "bad": true, "none": false} {
		if got := tr.Misconfigured(ns); got != want {
			t.Errorf("Misconfigured(%q) = %v, want %v", ns, got, want)
		}
	}
	tr.AddPod(PodUsage{UID: "p", Namespace: "ok", Priority: 5})
	for _, c := range []struct {
		ns   string
		prio int32
		want bool
	}{{"ok", 6, true}, {"ok", 5, false}, {"other", 100, false}} {
		if got := tr.HasPodBelow(c.ns, c.prio); got != c.want {
			t.Errorf("HasPodBelow(%q, %d) = %v, want %v", c.ns, c.prio, got, c.want)
		}
	}
}
