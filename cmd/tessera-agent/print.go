package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/tessera-sched/tessera/pkg/agent"
)

// runPrint implements --print: discover, print, exit. It never contacts the
// cluster, so it is how a person checks what the agent sees on a node.
func runPrint(ctx context.Context, o *options, d deps, out io.Writer) error {
	layout, err := o.validate()
	if err != nil {
		return err
	}
	nodeName := o.nodeName
	if nodeName == "" {
		if nodeName, err = d.hostname(); err != nil {
			return fmt.Errorf("no --node-name and no host name: %w", err)
		}
	}
	lib, err := openNVML(ctx, o, d)
	if err != nil {
		return err
	}
	defer shutdownNVML(ctx, lib)

	spec, info, err := agent.Discover(lib, agent.Options{
		MIGLayout: layout,
		HostFS:    os.DirFS(o.hostRoot),
		Logger:    klog.FromContext(ctx),
	})
	if err != nil {
		return fmt.Errorf("discovering GPUs: %w", err)
	}
	if len(spec.GPUs) == 0 {
		return errors.New("NVML loaded but found no GPUs on this node")
	}
	obj := agent.NewObject(nodeName, spec, info, version.Get().GitVersion, metav1.NewTime(d.now()))
	u, err := agent.ToUnstructured(obj)
	if err != nil {
		return err
	}
	doc, err := yaml.Marshal(u.Object)
	if err != nil {
		return err
	}
	header := fmt.Sprintf("# tessera-agent %s\n# driver %s, NVML %s, CUDA %s\n",
		version.Get().GitVersion, orUnknown(info.DriverVersion), orUnknown(info.NVMLVersion), cudaVersion(info.CUDADriverVersion))
	if _, err := io.WriteString(out, header+string(doc)); err != nil {
		return err
	}
	if _, err := spec.Topology(); err != nil {
		return fmt.Errorf("the scheduler would reject this topology, so the agent would not publish it: %w", err)
	}
	return nil
}

// cudaVersion formats NVML's CUDA driver version (1000*major + 10*minor).
func cudaVersion(v int) string {
	if v <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
