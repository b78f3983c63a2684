package profile

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// handle stands for a profile's framework handle: only its identity is used.
type handle struct{ fwk.Handle }

// oneGPU is a GPU state source that sees a single GPU on every node.
type oneGPU struct{}

func (oneGPU) NodeGPUs(_ klog.Logger, _ *v1.Node, _ []*v1.Pod) *kube.NodeGPUs {
	t := gpu.DefaultTopology("NVIDIA-H100-80GB-HBM3", 1)
	return &kube.NodeGPUs{Topology: &kube.NodeTopology{Topo: t}, GPUs: gpu.NewNodeState(t)}
}

func TestSharedPerProfileUntilContextEnds(t *testing.T) {
	h1, h2 := &handle{}, &handle{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := quota.NewTracker()
	SetTracker(ctx, h1, tr)
	if Tracker(h1) != tr {
		t.Fatal("tracker not published")
	}
	if Tracker(h2) != nil {
		t.Fatal("another profile sees the tracker")
	}

	node := st.MakeNode().Name("n").Label(kube.LabelProduct, "NVIDIA-H100-80GB-HBM3").
		Capacity(map[v1.ResourceName]string{kube.ResourceGPU: "8"}).Obj()
	logger := klog.Background()
	if got := NodeGPUs(h1, logger, node, nil); got.GPUs == nil || len(got.GPUs.GPUs()) != 8 {
		t.Fatalf("without GPUPlacement: %+v, want the 8 GPUs of the node's labels", got)
	}
	SetGPUStates(ctx, h1, oneGPU{})
	if got := NodeGPUs(h1, logger, node, nil); len(got.GPUs.GPUs()) != 1 {
		t.Errorf("with GPUPlacement: %d GPUs, want the published source's 1", len(got.GPUs.GPUs()))
	}
	if got := NodeGPUs(h2, logger, node, nil); len(got.GPUs.GPUs()) != 8 {
		t.Errorf("another profile: %d GPUs, want the labels' 8", len(got.GPUs.GPUs()))
	}

	cancel()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		return Tracker(h1) == nil && len(NodeGPUs(h1, logger, node, nil).GPUs.GPUs()) == 8, nil
	})
	if err != nil {
		t.Error("the profile's state outlived its context")
	}
	mu.Lock()
	defer mu.Unlock()
	if _, ok := profiles[h1]; ok {
		t.Error("entry of an ended profile kept")
	}
}
