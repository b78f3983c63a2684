//go:build chaos

package chaos

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// TestKillBetweenGangBinds SIGKILLs every scheduler replica the moment the
// first member of a 12-member gang is bound, while the others' Bindings
// are in flight: a gang partly bound with nobody left who permitted it.
// The replicas come back; the new leader rebuilds the group from the API
// (bound members count as placed) and binds the rest, and the audit finds
// no device given twice and no group left partly bound past its grace.
func TestKillBetweenGangBinds(t *testing.T) {
	h := newHarness(t, 4, nil)
	h.namespace("train")
	hit := false
	for attempt := 0; attempt < 3 && !hit; attempt++ {
		w, err := h.cp.Client.CoreV1().Pods("train").Watch(h.ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		group := fmt.Sprintf("ddp-%d", attempt)
		names := h.gang("train", group, 12, 2)
		atKill, killed := 0, false
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*v1.Pod); ok && ev.Type == watch.Modified && p.Spec.NodeName != "" && p.Labels["scheduling.x-k8s.io/pod-group"] == group {
				h.killAll()
				atKill, killed = h.bound("train", names), true
				break
			}
		}
		w.Stop()
		if !killed {
			t.Fatalf("the watch ended before any member of %s was bound", group)
		}
		hit = atKill < len(names)
		took := h.waitBound("train", names, 90*time.Second)
		t.Logf("attempt %d: replicas killed with %d of %d members bound; all bound %.1fs later", attempt, atKill, len(names), took.Seconds())
		h.audit(fmt.Sprintf("after the kill between %s's binds", group), 45*time.Second)
		// Room for the next attempt.
		for _, n := range names {
			_ = h.cp.Client.CoreV1().Pods("train").Delete(h.ctx, n, metav1.DeleteOptions{})
		}
		time.Sleep(2 * time.Second)
	}
	if !hit {
		t.Error("in 3 attempts every member was already bound when the replicas died: the fault was never between binds")
	}
}

// TestKillDuringReclaim SIGKILLs every replica the moment the first victim
// of a reclaim is deleted. Namespace research borrows all 8 GPUs of the
// cluster (min 0); prod asks for its guaranteed 4. After the replicas come
// back, prod's pod is bound, research has lost exactly the 4 pods prod was
// owed (none evicted twice or in excess) and no quota max is exceeded.
func TestKillDuringReclaim(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.namespace("research")
	h.namespace("prod")
	h.quota("research", 0, 8)
	h.quota("prod", 4, 8)
	var sweeps []string
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("sweep-%d", i)
		h.pod("research", name, 1, "")
		sweeps = append(sweeps, name)
	}
	h.waitBound("research", sweeps, 60*time.Second)

	w, err := h.cp.Client.CoreV1().Pods("research").Watch(h.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.pod("prod", "serve-4gpu", 4, "")
	deadline := time.After(60 * time.Second)
	var atKill int
wait:
	for {
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*v1.Pod)
			if ok && (ev.Type == watch.Deleted || p.DeletionTimestamp != nil) {
				h.killAll()
				list, err := h.cp.Client.CoreV1().Pods("research").List(h.ctx, metav1.ListOptions{})
				if err == nil {
					atKill = 8 - len(list.Items)
					for _, p := range list.Items {
						if p.DeletionTimestamp != nil {
							atKill++
						}
					}
				}
				break wait
			}
		case <-deadline:
			t.Fatal("no research pod was evicted for prod's guarantee within 60s")
		}
	}
	w.Stop()
	took := h.waitBound("prod", []string{"serve-4gpu"}, 90*time.Second)
	t.Logf("replicas killed with %d of research's pods evicted (deleted or being deleted); prod's pod bound %.1fs later", atKill, took.Seconds())
	time.Sleep(3 * time.Second) // a second eviction round would show by now
	list, err := h.cp.Client.CoreV1().Pods("research").List(h.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 4 {
		t.Errorf("research has %d of its 8 pods left, want 4: prod was owed 4 GPUs", len(list.Items))
	}
	h.audit("after the kill during reclaim", 30*time.Second)
}

// TestEtcdFaults makes etcd hang, then slow, then cut its connections,
// each while a gang and single pods are being created and scheduled. The
// replicas lose their lease in the hang and exit (the supervisor restarts
// them, as a Deployment would); after each fault everything that fits is
// bound, and the audit finds no violation.
func TestEtcdFaults(t *testing.T) {
	proxy := localcluster.NewEtcdProxy()
	h := newHarness(t, 4, proxy)
	h.namespace("work")
	h.waitBound("work", h.gang("work", "warmup", 4, 1), 60*time.Second)

	phase := func(name string, fault func(), heal func(), hold time.Duration, size int) {
		t.Helper()
		done := make(chan []string, 1)
		fault()
		go func() {
			names := h.gang("work", name, size, 1)
			for i := 0; i < 3; i++ {
				n := fmt.Sprintf("%s-single-%d", name, i)
				h.pod("work", n, 1, "")
				names = append(names, n)
			}
			done <- names
		}()
		time.Sleep(hold)
		healed := time.Now()
		heal()
		names := <-done
		h.waitBound("work", names, 2*time.Minute)
		t.Logf("%s: %s held, then all %d pods bound %.1fs after it ended (%d replica restarts so far)", name, hold, len(names), time.Since(healed).Seconds(), h.restarts)
		h.audit("after "+name, 45*time.Second)
		for _, n := range names {
			_ = h.cp.Client.CoreV1().Pods("work").Delete(h.ctx, n, metav1.DeleteOptions{})
		}
	}
	phase("hang", proxy.Pause, proxy.Resume, 8*time.Second, 6)
	phase("slow", func() { proxy.SetDelay(30 * time.Millisecond) }, func() { proxy.SetDelay(0) }, 10*time.Second, 6)
	phase("cut", func() {}, func() { t.Logf("cut %d etcd connections", proxy.DropConnections()) }, 2*time.Second, 6)
}

// TestKillDuringDeviceChoice SIGKILLs every replica the moment the first of
// a burst of device-level pods is bound, while the others' choices — MIG
// instances at new starts on a MIG-dynamic node (which the agent would
// create), GPU shares joining GPUs — are in flight: some have their
// assignment written and no node yet, some are reserved in the dead
// leader's memory only. The new leader rebuilds the node's MIG layout and
// the shares from the bound pods alone; every pod is bound and the audit
// finds no overlapping MIG slot, no GPU over 1000m and no device given
// twice.
func TestKillDuringDeviceChoice(t *testing.T) {
	h := newHarness(t, 2, nil)
	h.namespace("infer")
	h.dynamicMIGNode("dyn-0", 2)

	mig := func(profile string) func(*v1.Pod) {
		return func(p *v1.Pod) {
			p.Spec.Containers[0].Resources.Limits[v1.ResourceName(gpu.MIGResourcePrefix+profile)] = resource.MustParse("1")
		}
	}
	share := func(milli int) func(*v1.Pod) {
		return func(p *v1.Pod) { p.Annotations = map[string]string{gpu.AnnotationShare: fmt.Sprint(milli)} }
	}
	// Every pod is created gated, then all gates are lifted at once, so
	// that the choices are made in one burst.
	gate := func(p *v1.Pod) { p.Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: "tessera.dev/chaos-burst"}} }
	var names []string
	add := func(name string, mutate func(*v1.Pod)) {
		h.pod("infer", name, 0, "", mutate, gate)
		names = append(names, name)
	}
	for i := 0; i < 2; i++ {
		add(fmt.Sprintf("mig-3g-%d", i), mig("3g.40gb"))
	}
	for i := 0; i < 6; i++ {
		add(fmt.Sprintf("mig-1g-%d", i), mig("1g.10gb"))
	}
	for i, milli := range []int{600, 400, 300, 700, 250, 250, 500, 500} {
		add(fmt.Sprintf("share-%d", i), share(milli))
	}
	w, err := h.cp.Client.CoreV1().Pods("infer").Watch(h.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var lifted sync.WaitGroup
	for _, name := range names {
		lifted.Add(1)
		go func() {
			defer lifted.Done()
			patch := []byte(`[{"op":"remove","path":"/spec/schedulingGates"}]`)
			if _, err := h.cp.Client.CoreV1().Pods("infer").Patch(h.ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Errorf("lifting %s's gate: %v", name, err)
			}
		}()
	}
	var atKill, annotated, migLeft int
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*v1.Pod); ok && ev.Type == watch.Modified && p.Spec.NodeName != "" {
			h.killAll()
			pods, err := h.cp.Client.CoreV1().Pods("infer").List(h.ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pods.Items {
				switch {
				case p.Spec.NodeName != "":
					atKill++
				case p.Annotations[gpu.AnnotationAssignment] != "":
					annotated++
					fallthrough
				default:
					if strings.HasPrefix(p.Name, "mig-") {
						migLeft++
					}
				}
			}
			break
		}
	}
	w.Stop()
	lifted.Wait()
	if atKill == len(names) {
		t.Fatalf("all %d pods were already bound when the replicas died: the fault was not during their device choice", len(names))
	}
	took := h.waitBound("infer", names, 90*time.Second)
	t.Logf("replicas killed with %d of %d pods bound (%d of the rest MIG pods; %d with an assignment written, no node); all bound %.1fs later", atKill, len(names), migLeft, annotated, took.Seconds())
	h.audit("after the kill during device choice", 45*time.Second)
	for _, name := range names[:8] {
		p, err := h.cp.Client.CoreV1().Pods("infer").Get(h.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a, err := gpu.UnmarshalAssignment(p.Annotations[gpu.AnnotationAssignment])
		if err != nil || p.Spec.NodeName != "dyn-0" || len(a.MIG) != 1 {
			t.Errorf("MIG pod %s on %q with assignment %q (%v), want one MIG slot on dyn-0", name, p.Spec.NodeName, p.Annotations[gpu.AnnotationAssignment], err)
		}
	}
}
