package playground

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tessera-sched/tessera/examples"
	"github.com/tessera-sched/tessera/manifests/render"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/localcluster"
	"github.com/tessera-sched/tessera/pkg/realcluster"
)

// RealOptions configure RunReal.
type RealOptions struct {
	// Out receives progress and the report.
	Out io.Writer
	// Nodes is how many real nodes to start (at least 1). All but the last
	// have eight simulated H100 GPUs (tessera-agent --simulate=dgx-h100);
	// the last, when there are two or more, has none.
	Nodes int
	// BinDir holds kube-apiserver, kube-controller-manager, kube-proxy,
	// kubelet (`make e2e-bin`), tessera-scheduler and tessera-pause.
	BinDir string
	// Keep leaves the cluster running until ctx ends, and writes a
	// kubeconfig to Kubeconfig.
	Keep       bool
	Kubeconfig string
	// Timeout bounds the wait for the workload's pods to finish.
	Timeout time.Duration
}

// RealSchedulerImage is the image name the playground gives
// bin/tessera-scheduler; manifests/base's image is replaced by it, the one
// change a user makes to deploy from their own registry.
const RealSchedulerImage = "tessera.local/tessera-scheduler:dev"

// RunReal runs the playground on real nodes: a local cluster of real
// kubelets (pkg/realcluster), Tessera deployed onto it from manifests/base,
// and a workload whose pods really run, each printing the GPUs it was
// assigned. It prints what runs where, and stops the cluster leaving
// nothing behind.
func RunReal(ctx context.Context, o RealOptions) (err error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Nodes < 1 {
		return fmt.Errorf("--real-nodes must be at least 1, got %d", o.Nodes)
	}
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	dir, err := os.MkdirTemp("", "tessera-playground-real-")
	if err != nil {
		return err
	}
	noun := "nodes"
	if o.Nodes == 1 {
		noun = "node"
	}
	fmt.Fprintf(o.Out, "Tessera playground on %d real %s: kubelets, containerd and runc on this machine; component logs in %s\n", o.Nodes, noun, filepath.Join(dir, "logs"))

	var nodes []realcluster.NodeOptions
	var gpuNodes []string
	for i := 0; i < o.Nodes; i++ {
		if i == o.Nodes-1 && o.Nodes > 1 {
			nodes = append(nodes, realcluster.NodeOptions{Name: fmt.Sprintf("real-cpu-%d", i)})
			continue
		}
		// GPU Feature Discovery's label on a GPU node, which the agent's
		// DaemonSet selects; the agent does the rest.
		nodes = append(nodes, realcluster.NodeOptions{
			Name:   fmt.Sprintf("real-gpu-%d", i),
			Labels: map[string]string{"nvidia.com/gpu.present": "true"},
		})
		gpuNodes = append(gpuNodes, fmt.Sprintf("real-gpu-%d", i))
	}
	cluster, err := realcluster.Start(ctx, realcluster.Options{
		Dir:    dir,
		BinDir: o.BinDir,
		Nodes:  nodes,
		Images: []realcluster.Image{{
			Ref:        RealSchedulerImage,
			Files:      map[string]string{"/usr/local/bin/tessera-scheduler": filepath.Join(o.BinDir, "tessera-scheduler")},
			Entrypoint: []string{"/usr/local/bin/tessera-scheduler"},
			User:       "65532:65532",
		}, {
			Ref:        realcluster.AgentImage,
			Files:      map[string]string{"/usr/local/bin/tessera-agent": filepath.Join(o.BinDir, "tessera-agent")},
			Entrypoint: []string{"/usr/local/bin/tessera-agent"},
			User:       "65532:65532",
		}},
		Progress: indent(o.Out),
	})
	if err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "logs")); statErr != nil {
			// Refused before anything started (host requirements, binaries).
			os.RemoveAll(dir)
			return err
		}
		return fmt.Errorf("%w\n(component logs in %s)", err, filepath.Join(dir, "logs"))
	}
	defer func() {
		fmt.Fprintln(o.Out, "\nStopping the cluster: kubelets, pods (through the CRI), runtimes, kube-proxy's rules, control plane.")
		stopErr := cluster.Stop()
		left := cluster.Leftovers()
		switch {
		case stopErr != nil:
			err = fmt.Errorf("%v (component logs kept in %s)", stopErr, filepath.Join(dir, "logs"))
		case len(left) > 0:
			err = fmt.Errorf("left on this machine: %s (component logs kept in %s)", strings.Join(left, "; "), filepath.Join(dir, "logs"))
		default:
			os.RemoveAll(dir)
			fmt.Fprintln(o.Out, "Stopped: no process, mount, network namespace or bridge of the playground is left.")
		}
	}()

	p := &progress{out: o.Out}
	var leader string
	if err := p.step("Deploying Tessera: manifests/base with the image tessera.local/tessera-scheduler:dev", func() (string, error) {
		err := cluster.Apply(ctx, "base", render.Overlay{Images: []render.Image{{Name: "ghcr.io/tessera-sched/tessera-scheduler", NewName: "tessera.local/tessera-scheduler", NewTag: "dev"}}})
		if err != nil {
			return "", err
		}
		leader, err = waitSchedulerReady(ctx, cluster, 3*time.Minute)
		return "2 replicas ready, leader " + leader, err
	}); err != nil {
		return err
	}
	if len(gpuNodes) > 0 {
		if err := p.step("Deploying tessera-agent as the GPU device plugin: manifests/agent-device-plugin with --simulate=dgx-h100 --simulate-mig=7 --mig-layout=dynamic", func() (string, error) {
			err := cluster.DeploySimulatedAgent(ctx, "dgx-h100", gpuNodes, 7, 2*time.Minute, "--simulate-mig=7", "--mig-layout=dynamic")
			return fmt.Sprintf("%d GPU nodes advertise 7 GPUs, their share slots and the MIG slots of GPU 7 each", len(gpuNodes)), err
		}); err != nil {
			return err
		}
	}

	var names []string
	if err := p.step("Applying the workload (examples/playground-real/workload.yaml)", func() (string, error) {
		objs, err := readFiles(examples.PlaygroundReal, "playground-real/workload.yaml")
		if err != nil {
			return "", err
		}
		for _, obj := range objs {
			if obj.GetKind() == "Pod" {
				names = append(names, obj.GetName())
			}
		}
		return fmt.Sprintf("%d pods in namespace demo", len(names)), localcluster.Apply(ctx, cluster.Config, objs, false)
	}); err != nil {
		return err
	}
	var pods []v1.Pod
	if err := p.step("Waiting for the pods to run to completion", func() (string, error) {
		var err error
		pods, err = waitFinished(ctx, cluster, "demo", len(names), o.Timeout)
		return "", err
	}); err != nil {
		return err
	}
	fmt.Fprintln(o.Out)
	printRealReport(ctx, o.Out, cluster, pods)

	if o.Keep {
		path := orDefault(o.Kubeconfig, "tessera-playground.kubeconfig")
		data, err := os.ReadFile(cluster.Kubeconfig)
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
		abs, _ := filepath.Abs(path)
		fmt.Fprintf(o.Out, "\nThe cluster keeps running. Try:\n  kubectl --kubeconfig %s get pods -A -o wide\nPress Ctrl-C to stop.\n", abs)
		<-ctx.Done()
	}
	return nil
}

// waitSchedulerReady waits for the scheduler Deployment to be available
// and its Lease held, and returns the leading pod.
func waitSchedulerReady(ctx context.Context, c *realcluster.Cluster, timeout time.Duration) (string, error) {
	var leader string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments("tessera-system").Get(ctx, "tessera-scheduler", metav1.GetOptions{})
		if err != nil || d.Spec.Replicas == nil || d.Status.AvailableReplicas != *d.Spec.Replicas {
			return false, nil
		}
		lease, err := c.Client.CoordinationV1().Leases("tessera-system").Get(ctx, "tessera-scheduler", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return false, nil
		}
		leader, _, _ = strings.Cut(*lease.Spec.HolderIdentity, "_")
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("tessera-scheduler not ready with a leader after %s (see kubectl -n tessera-system get pods)", timeout)
	}
	return leader, nil
}

// waitFinished waits until want pods of ns have succeeded or failed.
func waitFinished(ctx context.Context, c *realcluster.Cluster, ns string, want int, timeout time.Duration) ([]v1.Pod, error) {
	var pods []v1.Pod
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		pods = list.Items
		done := 0
		for _, p := range pods {
			if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
				done++
			}
		}
		return done >= want, nil
	})
	if err != nil {
		var states []string
		for _, p := range pods {
			states = append(states, p.Name+": "+podState(&p))
		}
		return pods, fmt.Errorf("not every pod finished in %s: %s", timeout, strings.Join(states, "; "))
	}
	return pods, nil
}

// printRealReport prints, per pod, where it ran, the GPUs the scheduler
// assigned, the GPUs its container saw (the NVIDIA_VISIBLE_DEVICES it
// printed, fetched from the kubelet through the API server as kubectl logs
// does, with UUIDs turned back into indices through the node's
// NodeGPUTopology) and how it ended.
func printRealReport(ctx context.Context, out io.Writer, c *realcluster.Cluster, pods []v1.Pod) {
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tASSIGNED\tCONTAINER SAW\tEXIT")
	indices := map[string]map[string]int{} // node → UUID → index
	for _, p := range pods {
		assigned := "-"
		if a, err := gpu.UnmarshalAssignment(p.Annotations[gpu.AnnotationAssignment]); err == nil && !a.IsZero() {
			assigned = a.Describe()
		}
		exit := string(p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil {
				exit = fmt.Sprintf("%d", t.ExitCode)
			}
		}
		saw := "-"
		if data, err := c.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &v1.PodLogOptions{}).DoRaw(ctx); err != nil {
			saw = "(logs: " + err.Error() + ")"
		} else if v, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "NVIDIA_VISIBLE_DEVICES="); ok && v != "" {
			v, _, _ = strings.Cut(v, "\n")
			if indices[p.Spec.NodeName] == nil {
				indices[p.Spec.NodeName] = gpuIndices(ctx, c, p.Spec.NodeName)
			}
			var known []int
			var unknown []string
			for _, uuid := range strings.Split(v, ",") {
				if i, ok := indices[p.Spec.NodeName][uuid]; ok {
					known = append(known, i)
				} else if strings.HasPrefix(uuid, "MIG-") && len(uuid) > 12 {
					unknown = append(unknown, "MIG device "+uuid[:12]+"…")
				} else {
					unknown = append(unknown, uuid)
				}
			}
			sort.Ints(known)
			var idx []string
			for _, i := range known {
				idx = append(idx, fmt.Sprint(i))
			}
			idx = append(idx, unknown...)
			switch {
			case len(known) == 0:
				saw = strings.Join(idx, ",")
			case len(idx) == 1:
				saw = "GPU " + idx[0]
			default:
				saw = "GPUs " + strings.Join(idx, ",")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Spec.NodeName, assigned, saw, exit)
	}
	tw.Flush()
}

// gpuIndices maps the node's GPU UUIDs to their indices, from its
// NodeGPUTopology.
func gpuIndices(ctx context.Context, c *realcluster.Cluster, node string) map[string]int {
	out := map[string]int{}
	topo, err := c.Dynamic.Resource(schema.GroupVersionResource{Group: "tessera.dev", Version: "v1alpha1", Resource: "nodegputopologies"}).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return out
	}
	gpus, _, _ := unstructured.NestedSlice(topo.Object, "spec", "gpus")
	for _, g := range gpus {
		m, ok := g.(map[string]any)
		if !ok {
			continue
		}
		uuid, _ := m["uuid"].(string)
		switch i := m["index"].(type) {
		case int64:
			out[uuid] = int(i)
		case float64:
			out[uuid] = int(i)
		}
	}
	return out
}

// indent prefixes each line written to w, for the cluster's progress lines
// under the playground's own.
func indent(w io.Writer) io.Writer { return &prefixWriter{w: w, prefix: "    "} }

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(p.w, p.prefix+line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}
