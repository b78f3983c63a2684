package replay

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"

	"github.com/tessera-sched/tessera/pkg/gpu"
)

// runWith is Run for one seed, also returning the simulator for inspection.
func runWith(ctx context.Context, o Options, sim **Simulator) (*Result, error) {
	testHookSimulator = func(s *Simulator) { *sim = s }
	defer func() { testHookSimulator = nil }()
	return Run(ctx, o)
}

// addAnnotated adds a pod's recorded assignment to s; a GPU pod without one
// is an error.
func addAnnotated(s *gpu.NodeState, p *v1.Pod) error {
	raw, ok := p.Annotations[gpu.AnnotationAssignment]
	if !ok {
		if _, share := p.Annotations["tessera.dev/gpu-milli"]; share {
			return fmt.Errorf("pod %s holds a share without an assignment", p.Name)
		}
		if q, whole := p.Spec.Containers[0].Resources.Requests["nvidia.com/gpu"]; whole && !q.IsZero() {
			return fmt.Errorf("pod %s holds GPUs without an assignment", p.Name)
		}
		return nil
	}
	a, err := gpu.UnmarshalAssignment(raw)
	if err != nil {
		return err
	}
	return s.Add(a)
}
