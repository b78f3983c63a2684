package v1alpha1

import (
	"encoding/json"
	"testing"
)

// FuzzTopology: a NodeGPUTopology's spec comes from an agent (or whoever
// may write the object); turning it into the scheduler's topology never
// panics, and what it accepts has distinct GPU indices.
func FuzzTopology(f *testing.F) {
	f.Add(`{"gpus":[{"index":0,"uuid":"GPU-a","product":"NVIDIA-H100-80GB-HBM3","numaNode":0,"nvlinkDomain":"d0","mig":{"mode":"Dynamic","instances":[{"profile":"3g.40gb","start":4}]}}]}`)
	f.Add(`{"gpus":[{"index":0},{"index":0}]}`)
	f.Add(`{"gpus":[{"index":-1,"mig":{"mode":"Static","instances":[{"profile":"9g.99gb","start":-2}]}}]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var spec NodeGPUTopologySpec
		if json.Unmarshal([]byte(raw), &spec) != nil {
			return
		}
		topo, err := spec.Topology()
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, g := range topo.GPUs {
			if seen[g.Index] {
				t.Errorf("accepted duplicate GPU index %d from %s", g.Index, raw)
			}
			seen[g.Index] = true
		}
	})
}
