// Package profile is the one place where the plugins of one scheduling
// profile share state: ElasticQuota's quota tracker and GPUPlacement's node
// GPU states, which Gang's whole-group check reads so that it applies the
// same quota rules and sees the same GPUs as the per-pod checks.
//
// Upstream shares such state through the framework handle (e.g.
// fh.PodGroupManager()); an out-of-tree plugin cannot add to the handle,
// so state is published here under it instead. A plugin publishes when it
// is built and withdraws when the scheduler's context ends; readers look it
// up when they need it, since the framework builds plugins in any order.
package profile

import (
	"context"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// GPUStates derives node GPU states exactly as GPUPlacement's Filter does:
// from the topology it uses for the node (the agent's NodeGPUTopology when
// there is a valid one, else the node's labels) and its reservations of
// pods in flight.
type GPUStates interface {
	// NodeGPUs is node's GPU state with only pods on it; its GPUs are nil
	// for a node without GPUs.
	NodeGPUs(logger klog.Logger, node *v1.Node, pods []*v1.Pod) *kube.NodeGPUs
}

type shared struct {
	tracker *quota.Tracker
	gpus    GPUStates
}

var (
	mu       sync.Mutex
	profiles = map[fwk.Handle]*shared{}
)

// publish records what a plugin of the profile h shares until ctx ends.
func publish(ctx context.Context, h fwk.Handle, set func(*shared), unset func(*shared)) {
	mu.Lock()
	s := profiles[h]
	if s == nil {
		s = &shared{}
		profiles[h] = s
	}
	set(s)
	mu.Unlock()
	go func() {
		<-ctx.Done()
		mu.Lock()
		defer mu.Unlock()
		if s := profiles[h]; s != nil {
			unset(s)
			if *s == (shared{}) {
				delete(profiles, h)
			}
		}
	}()
}

func lookup(h fwk.Handle) shared {
	mu.Lock()
	defer mu.Unlock()
	if s := profiles[h]; s != nil {
		return *s
	}
	return shared{}
}

// SetTracker publishes ElasticQuota's tracker for the profile h until ctx
// ends.
func SetTracker(ctx context.Context, h fwk.Handle, t *quota.Tracker) {
	publish(ctx, h, func(s *shared) { s.tracker = t }, func(s *shared) { s.tracker = nil })
}

// Tracker is the quota tracker of the profile h, nil when the profile does
// not run ElasticQuota.
func Tracker(h fwk.Handle) *quota.Tracker { return lookup(h).tracker }

// SetGPUStates publishes GPUPlacement's node GPU states for the profile h
// until ctx ends.
func SetGPUStates(ctx context.Context, h fwk.Handle, g GPUStates) {
	publish(ctx, h, func(s *shared) { s.gpus = g }, func(s *shared) { s.gpus = nil })
}

// NodeGPUs is node's GPU state with only pods on it as the profile h's
// GPUPlacement sees it; without GPUPlacement in the profile, as its labels
// describe it (kube.LabelNodeGPUs).
func NodeGPUs(h fwk.Handle, logger klog.Logger, node *v1.Node, pods []*v1.Pod) *kube.NodeGPUs {
	if g := lookup(h).gpus; g != nil {
		return g.NodeGPUs(logger, node, pods)
	}
	return kube.LabelNodeGPUs(logger, node, pods)
}

// GroupStateKey is the CycleState key under which Gang tells the other
// plugins of a pod group member's scheduling cycle about its group.
const GroupStateKey fwk.StateKey = "tessera.dev/pod-group"

// Group is what Gang tells the other plugins in a member's cycle, so that
// GPUPlacement can keep a group's members on one node close together.
type Group struct {
	// Name is the group's name (the pod's pod-group label) in the pod's
	// namespace.
	Name string
	// Others counts the group's members still without a place besides
	// this pod.
	Others int
}

// Clone shares the Group: it is read-only once written.
func (g *Group) Clone() fwk.StateData { return g }

// GroupOf returns what Gang wrote for the cycle's pod, and false for a pod
// outside groups (or a profile without Gang).
func GroupOf(cs fwk.CycleState) (*Group, bool) {
	d, err := cs.Read(GroupStateKey)
	if err != nil {
		return nil, false
	}
	g, ok := d.(*Group)
	return g, ok
}

// RequireLocalityKey is the CycleState key under which a preemption's what-if
// asks GPUPlacement's Filter to accept only GPUs of one NVLink domain or
// NUMA node for a multi-GPU pod, so that victims can be chosen whose freed
// devices the pod can use well.
const RequireLocalityKey fwk.StateKey = "tessera.dev/require-gpu-locality"

// RequireLocality is the value under RequireLocalityKey.
type RequireLocality struct{}

// Clone returns the flag; it holds nothing.
func (RequireLocality) Clone() fwk.StateData { return RequireLocality{} }

// LocalityRequired reports whether the cycle's what-if asks for local GPUs.
func LocalityRequired(cs fwk.CycleState) bool {
	_, err := cs.Read(RequireLocalityKey)
	return err == nil
}
