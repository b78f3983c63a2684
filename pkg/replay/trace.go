// Package replay replays a production GPU trace (the openb format of
// Alibaba's cluster-trace-gpu-v2023, from the FGD paper, USENIX ATC'23)
// through the real scheduler framework with Tessera's real plugins, one pod
// at a time, and measures the GPU allocation ratio the way the paper does.
package replay

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// NodeRow is one node of a trace: sn,cpu_milli,memory_mib,gpu,model.
type NodeRow struct {
	Name      string
	CPUMilli  int64
	MemoryMiB int64
	GPUs      int
	Model     string
}

// PodRow is one pod of a trace: name,cpu_milli,memory_mib,num_gpu,gpu_milli,
// gpu_spec (other columns are ignored). GPUMilli is per GPU: below 1000 only
// for a share of one GPU.
type PodRow struct {
	Name      string
	CPUMilli  int64
	MemoryMiB int64
	NumGPU    int
	GPUMilli  int
	// GPUSpec lists the GPU models the pod may use; empty means any.
	GPUSpec []string
}

// GPURequestMilli is the pod's GPU request in milli-GPUs.
func (p PodRow) GPURequestMilli() int64 { return int64(p.NumGPU) * int64(p.GPUMilli) }

// ReadNodesFile reads a node CSV.
func ReadNodesFile(path string) ([]NodeRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadNodes(f, path)
}

// ReadPodsFile reads a pod CSV.
func ReadPodsFile(path string) ([]PodRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadPods(f, path)
}

// ReadNodes parses a node CSV with a header naming at least sn, cpu_milli,
// memory_mib, gpu and model. Errors name the file, line and column.
func ReadNodes(r io.Reader, file string) ([]NodeRow, error) {
	t, err := newTable(r, file, "sn", "cpu_milli", "memory_mib", "gpu", "model")
	if err != nil {
		return nil, err
	}
	var out []NodeRow
	for t.next() {
		n := NodeRow{Name: t.str("sn"), CPUMilli: t.int("cpu_milli"), MemoryMiB: t.int("memory_mib"), GPUs: int(t.int("gpu")), Model: t.str("model")}
		if n.Name == "" {
			t.fail("sn", "must not be empty")
		}
		if n.CPUMilli <= 0 || n.MemoryMiB <= 0 || n.GPUs < 0 {
			t.fail("cpu_milli", "cpu_milli and memory_mib must be positive and gpu non-negative")
		}
		out = append(out, n)
	}
	return out, t.err
}

// ReadPods parses a pod CSV with a header naming at least name, cpu_milli,
// memory_mib, num_gpu and gpu_milli (gpu_spec is optional).
func ReadPods(r io.Reader, file string) ([]PodRow, error) {
	t, err := newTable(r, file, "name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
	if err != nil {
		return nil, err
	}
	var out []PodRow
	for t.next() {
		p := PodRow{Name: t.str("name"), CPUMilli: t.int("cpu_milli"), MemoryMiB: t.int("memory_mib"), NumGPU: int(t.int("num_gpu")), GPUMilli: int(t.int("gpu_milli"))}
		if spec := t.str("gpu_spec"); spec != "" {
			p.GPUSpec = strings.Split(spec, "|")
		}
		switch {
		case p.NumGPU < 0 || p.GPUMilli < 0 || p.GPUMilli > 1000:
			t.fail("gpu_milli", "num_gpu must be >= 0 and gpu_milli within 0..1000")
		case p.NumGPU > 1 && p.GPUMilli != 1000:
			t.fail("gpu_milli", "a pod with several GPUs must use them whole (gpu_milli 1000)")
		case p.NumGPU > 0 && p.GPUMilli == 0:
			t.fail("gpu_milli", "a GPU pod needs gpu_milli > 0")
		}
		out = append(out, p)
	}
	return out, t.err
}

// table reads a CSV by column name, keeping the first error with its place.
type table struct {
	r    *csv.Reader
	file string
	cols map[string]int
	row  []string
	line int
	err  error
}

func newTable(r io.Reader, file string, required ...string) (*table, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", file, err)
	}
	t := &table{r: cr, file: file, cols: map[string]int{}, line: 1}
	for i, h := range header {
		t.cols[strings.TrimSpace(h)] = i
	}
	for _, c := range required {
		if _, ok := t.cols[c]; !ok {
			return nil, fmt.Errorf("%s: header lacks column %q (has %v)", file, c, header)
		}
	}
	return t, nil
}

func (t *table) next() bool {
	if t.err != nil {
		return false
	}
	row, err := t.r.Read()
	if errors.Is(err, io.EOF) {
		return false
	}
	t.line++
	if err != nil {
		t.err = fmt.Errorf("%s:%d: %w", t.file, t.line, err)
		return false
	}
	t.row = row
	return true
}

func (t *table) str(col string) string {
	i, ok := t.cols[col]
	if !ok || i >= len(t.row) {
		return ""
	}
	return strings.TrimSpace(t.row[i])
}

func (t *table) int(col string) int64 {
	s := t.str(col)
	if s == "" {
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.fail(col, fmt.Sprintf("%q is not an integer", s))
	}
	return v
}

func (t *table) fail(col, msg string) {
	if t.err == nil {
		t.err = fmt.Errorf("%s:%d: column %s: %s", t.file, t.line, col, msg)
	}
}
