//go:build chaos

package chaos

import (
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

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
