package replay

import (
	"strings"
	"testing"
)

// FuzzReadTrace: the trace readers take files users bring (the FGD
// variants, their own clusters' exports); they never panic, every refusal
// names the file, and every row they accept is in range.
func FuzzReadTrace(f *testing.F) {
	f.Add("sn,cpu_milli,memory_mib,gpu,model\nn1,96000,786432,8,V100M32\n", "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np1,8000,30720,1,500,V100M32|A10\n")
	f.Add("sn,cpu_milli\nn1,x\n", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,2,500\n")
	f.Add("", "name\n\"unterminated")
	f.Fuzz(func(t *testing.T, nodes, pods string) {
		ns, err := ReadNodes(strings.NewReader(nodes), "nodes.csv")
		if err != nil && !strings.Contains(err.Error(), "nodes.csv") {
			t.Errorf("node error %q does not name the file", err)
		}
		for _, n := range ns {
			if err == nil && (n.Name == "" || n.CPUMilli <= 0 || n.MemoryMiB <= 0 || n.GPUs < 0) {
				t.Errorf("accepted node %+v", n)
			}
		}
		ps, err := ReadPods(strings.NewReader(pods), "pods.csv")
		if err != nil && !strings.Contains(err.Error(), "pods.csv") {
			t.Errorf("pod error %q does not name the file", err)
		}
		for _, p := range ps {
			if err == nil && (p.NumGPU < 0 || p.GPUMilli < 0 || p.GPUMilli > 1000 || (p.NumGPU > 1 && p.GPUMilli != 1000)) {
				t.Errorf("accepted pod %+v", p)
			}
		}
	})
}
