// Package playground runs Tessera's main job on an embedded default: a real
// etcd + kube-apiserver + tessera-scheduler in one process, a small simulated
// GPU cluster and an example workload, and a report of where every pod went
// and why the rest are pending.
package playground

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/tessera-sched/tessera/examples"
	"github.com/tessera-sched/tessera/manifests"
	"github.com/tessera-sched/tessera/manifests/render"
	"github.com/tessera-sched/tessera/pkg/explain"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// Options configure Run.
type Options struct {
	// Out receives progress and the report.
	Out io.Writer
	// Workload, if set, is a directory of YAML files (or one file) applied
	// instead of the embedded examples/playground/workload.yaml.
	Workload string
	// Cluster, if set, is a directory of YAML files (or one file) of Nodes
	// and NodeGPUTopologies created instead of the embedded
	// examples/playground/cluster.yaml.
	Cluster string
	// NoScheduler runs the control plane, cluster and workload without
	// Tessera's scheduler, for a build or configuration of your own beside
	// it; it implies Keep.
	NoScheduler bool
	// DataDir, if set, holds etcd's data (and the admin kubeconfig) and is
	// kept: a playground started again with the same DataDir continues
	// with every object of the last one (the scheduler rebuilding its state
	// from them), without the example scenes.
	DataDir string
	// Keep leaves the cluster running until ctx ends, and writes a
	// kubeconfig to Kubeconfig so that kubectl can be used against it.
	Keep       bool
	Kubeconfig string
	// SettleTimeout bounds the wait for every pod to be placed or to have a
	// reason for being Pending.
	SettleTimeout time.Duration
	// GPUMap, if set, is the file the GPU map (an SVG picture of every
	// node's GPUs at the end, see tessera explain cluster) is written to.
	GPUMap string
}

// tempPrefix starts the name of a playground's temporary folder, followed
// by the id of the process that owns it.
const tempPrefix = "tessera-playground-pid"

// removeStale removes the temporary folders under dir of playgrounds whose
// process no longer exists, and returns how many it removed.
func removeStale(dir, prefix string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		if os.RemoveAll(filepath.Join(dir, e.Name())) == nil {
			n++
		}
	}
	return n
}

// processAlive reports whether a process with this id exists and has not
// exited (signal 0 checks without sending anything; EPERM means it exists
// but is not ours; a zombie, exited but not yet reaped, counts as gone).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// "pid (comm) state ...": the state follows the last parenthesis.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// Run starts the playground, prints the report and tears everything down
// (unless Keep). It returns an error only when the playground itself could
// not run; pods that stay Pending are part of the report, not an error.
func Run(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.SettleTimeout == 0 {
		o.SettleTimeout = 90 * time.Second
	}
	if n := removeStale(os.TempDir(), tempPrefix); n > 0 {
		fmt.Fprintf(o.Out, "Removed %d temporary folders left by playgrounds that were killed.\n", n)
	}
	if o.NoScheduler {
		o.Keep = true
	}
	dir, reused, err := dataDir(o.DataDir)
	if err != nil {
		return err
	}
	if o.DataDir == "" {
		defer os.RemoveAll(dir)
	} else {
		defer fmt.Fprintf(o.Out, "Data kept in %s: run the playground again with --data-dir %s to continue where it stopped.\n", dir, dir)
	}

	// The control plane logs a great deal; keep it out of the person's
	// terminal but available.
	logPath := filepath.Join(dir, "control-plane.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	quietKlog(logFile)

	p := &progress{out: o.Out}
	fmt.Fprintln(o.Out, "Tessera playground: a real etcd, kube-apiserver and tessera-scheduler in this process.")

	var cp *localcluster.ControlPlane
	if err := p.step("Starting etcd and kube-apiserver", func() (string, error) {
		var err error
		cp, err = localcluster.StartProgram(localcluster.Options{Dir: dir, Log: logFile})
		return "", err
	}); err != nil {
		return err
	}
	defer cp.Stop()

	if err := p.step("Installing CRDs (PodGroup, ElasticQuota, NodeGPUTopology)", func() (string, error) {
		data, err := render.CRDs()
		if err != nil {
			return "", err
		}
		objs, err := localcluster.DecodeYAML(data)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d CRDs", len(objs)), localcluster.Apply(ctx, cp.Config, objs, false)
	}); err != nil {
		return err
	}

	if !o.NoScheduler {
		var sched *localcluster.Scheduler
		if err := p.step("Starting tessera-scheduler (manifests/base/scheduler-config.yaml)", func() (string, error) {
			config, err := fs.ReadFile(manifests.FS, "base/scheduler-config.yaml")
			if err != nil {
				return "", err
			}
			sched, err = localcluster.StartScheduler(ctx, cp.Kubeconfig, config, dir)
			return "profile tessera-scheduler", err
		}); err != nil {
			return err
		}
		defer sched.Stop()
	}

	kubeletCtx, stopKubelets := context.WithCancel(ctx)
	defer stopKubelets()
	go localcluster.SimulateKubelets(kubeletCtx, cp.Client)

	clusterFrom := "examples/playground/cluster.yaml"
	if o.Cluster != "" {
		clusterFrom = o.Cluster
	}
	if err := p.step("Creating the simulated GPU cluster ("+clusterFrom+")", func() (string, error) {
		var objs []*unstructured.Unstructured
		var err error
		if o.Cluster != "" {
			objs, err = readPath(o.Cluster)
		} else {
			objs, err = readFiles(examples.Playground, "playground/cluster.yaml")
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d nodes", len(objs)), localcluster.Apply(ctx, cp.Config, objs, false)
	}); err != nil {
		return err
	}

	var namespaces sets.Set[string]
	var wantPods int
	if err := p.step("Applying the example workload", func() (string, error) {
		var objs []*unstructured.Unstructured
		var err error
		if o.Workload != "" {
			objs, err = readPath(o.Workload)
		} else {
			objs, err = readFiles(examples.Playground, "playground/workload.yaml")
		}
		if err != nil {
			return "", err
		}
		namespaces = sets.New[string]()
		for _, obj := range objs {
			if obj.GetKind() == "Pod" {
				wantPods++
				namespaces.Insert(orDefault(obj.GetNamespace(), metav1.NamespaceDefault))
			}
		}
		return fmt.Sprintf("%d objects, %d pods", len(objs), wantPods), localcluster.Apply(ctx, cp.Config, objs, false)
	}); err != nil {
		return err
	}

	if o.NoScheduler {
		return keep(ctx, o, cp, dir, "\nNo scheduler runs: the pods wait for yours. Start it against this playground, e.g.\n  bin/tessera-scheduler --config manifests/base/scheduler-config.yaml --kubeconfig %[1]s --leader-elect=false\n")
	}

	var pods []v1.Pod
	if err := p.step("Waiting for every pod to be placed or to have a reason", func() (string, error) {
		var err error
		pods, err = settle(ctx, cp, namespaces, wantPods, o.SettleTimeout)
		return "", err
	}); err != nil {
		return err
	}
	nodes, err := cp.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	quotas, err := listQuotas(ctx, cp, namespaces)
	if err != nil {
		return err
	}
	fmt.Fprintln(o.Out)
	report(o.Out, nodes.Items, pods, quotas)

	if reused {
		fmt.Fprintf(o.Out, "\nContinuing on the data in %s: the example scenes ran the first time.\n", dir)
	}
	if o.Workload == "" && o.Cluster == "" && !reused {
		if err := gangScene(ctx, o.Out, p, cp); err != nil {
			return err
		}
		if err := reclaimScene(ctx, o.Out, p, cp); err != nil {
			return err
		}
		if err := gangPreemptScene(ctx, o.Out, p, cp); err != nil {
			return err
		}
	}

	if o.GPUMap != "" {
		if err := writeGPUMap(ctx, o.Out, cp, o.GPUMap); err != nil {
			return err
		}
	}

	if o.Keep {
		return keep(ctx, o, cp, dir, "\nThe playground keeps running. Try:\n  kubectl --kubeconfig %[1]s get pods -A -o wide\n  tessera explain pod too-big-16gpu -n team-a --kubeconfig %[1]s\n")
	}
	fmt.Fprintln(o.Out, "\nStopping the playground.")
	return nil
}

// keep writes the kubeconfig (owner-only), says what to try (hint, with %[1]s
// the kubeconfig's path) and runs until ctx ends.
func keep(ctx context.Context, o Options, cp *localcluster.ControlPlane, dir, hint string) error {
	path := o.Kubeconfig
	if path == "" {
		path = "tessera-playground.kubeconfig"
	}
	if err := localcluster.WriteKubeconfig(cp.Config, path); err != nil {
		return err
	}
	abs, _ := filepath.Abs(path)
	fmt.Fprintf(o.Out, hint, abs)
	fmt.Fprintf(o.Out, "Control-plane log: %s\nPress Ctrl-C to stop.\n", filepath.Join(dir, "control-plane.log"))
	<-ctx.Done()
	fmt.Fprintln(o.Out, "\nStopping the playground.")
	return nil
}

// dataDir returns the folder for etcd's data and the kubeconfig: dir
// (created 0700 if missing; reused reports whether it holds a previous
// playground's data), or a new temporary one whose name carries this
// process's id, so that the next playground can remove it if this one is
// killed (SIGKILL cannot be caught; SIGINT and SIGTERM end ctx and the
// deferred removal runs).
func dataDir(dir string) (string, bool, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tempPrefix, os.Getpid()))
		return d, false, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", false, fmt.Errorf("--data-dir %s: %w", dir, err)
	}
	if err := os.Chmod(abs, 0o700); err != nil {
		return "", false, err
	}
	_, err = os.Stat(filepath.Join(abs, "etcd"))
	return abs, err == nil, nil
}

// readPath reads a YAML file, or every YAML file of a directory.
func readPath(path string) ([]*unstructured.Unstructured, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return readAll(os.DirFS(path), ".")
	}
	return readFiles(os.DirFS(filepath.Dir(path)), filepath.Base(path))
}

// writeGPUMap draws every node's GPUs as they are now into path, through
// the same report as tessera explain cluster.
func writeGPUMap(ctx context.Context, out io.Writer, cp *localcluster.ControlPlane, path string) error {
	r, err := explain.Cluster(ctx, explain.Options{Config: cp.Config})
	if err != nil {
		return fmt.Errorf("GPU map: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.WriteSVG(f, "Tessera playground: GPUs after every scene"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	abs, _ := filepath.Abs(path)
	fmt.Fprintf(out, "\nGPU map: %s (open it in a browser; hover a GPU for its pods)\n", abs)
	return nil
}

// gangScene shows a pod group waiting while it is incomplete and then
// running, all members bound together: examples/playground/gang.yaml minus
// its last pod first, then the last pod.
func gangScene(ctx context.Context, out io.Writer, p *progress, cp *localcluster.ControlPlane) error {
	objs, err := readFiles(examples.Playground, "playground/gang.yaml")
	if err != nil || len(objs) < 2 {
		return err
	}
	last := objs[len(objs)-1]
	ns := last.GetNamespace()
	members := podNamesOf(objs)
	fmt.Fprintf(out, "\nGang: pod group %s/finetune needs all %d workers at once\n", ns, len(members))
	var reason string
	if err := p.step(fmt.Sprintf("Creating the pod group and %d of its %d workers", len(members)-1, len(members)), func() (string, error) {
		if err := localcluster.Apply(ctx, cp.Config, objs[:len(objs)-1], false); err != nil {
			return "", err
		}
		return "", wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, members[0], metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			want := fmt.Sprintf("%d of %d", len(members)-1, len(members))
			for _, c := range pod.Status.Conditions {
				if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
					reason = c.Reason + ": " + c.Message
					return strings.Contains(c.Message, want), nil
				}
			}
			return false, nil
		})
	}); err != nil {
		return err
	}
	bound := 0
	for _, m := range members[:len(members)-1] {
		if pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, m, metav1.GetOptions{}); err == nil && pod.Spec.NodeName != "" {
			bound++
		}
	}
	fmt.Fprintf(out, "    %s waits (%d of its group bound): %s\n", members[0], bound, reason)
	if err := p.step("Creating the last worker", func() (string, error) {
		return "", applyAndWait(ctx, cp, objs[len(objs)-1:], ns, members, podBound)
	}); err != nil {
		return err
	}
	return printBound(ctx, out, cp, ns, members)
}

// reclaimScene shows quota reclaim: a namespace borrowing idle GPUs, then
// their guaranteed owner taking them back by preemption
// (examples/playground/reclaim.yaml).
func reclaimScene(ctx context.Context, out io.Writer, p *progress, cp *localcluster.ControlPlane) error {
	objs, err := readFiles(examples.Playground, "playground/reclaim.yaml")
	if err != nil || len(objs) < 2 {
		return err
	}
	first, last := objs[:len(objs)-1], objs[len(objs)-1:]
	sweeps := podNamesOf(first)
	serve := last[0]
	fmt.Fprintf(out, "\nReclaim: namespace research (min 0 GPUs) borrows the idle lab node; prod (min 2) takes its guarantee back\n")
	if err := p.step(fmt.Sprintf("Running %d one-GPU sweep pods of research on gpu-lab", len(sweeps)), func() (string, error) {
		return "", applyAndWait(ctx, cp, first, "research", sweeps, podRunning)
	}); err != nil {
		return err
	}
	if err := p.step(fmt.Sprintf("Creating %s/%s, within prod's guaranteed 2 GPUs", serve.GetNamespace(), serve.GetName()), func() (string, error) {
		return "", applyAndWait(ctx, cp, last, serve.GetNamespace(), []string{serve.GetName()}, podBound)
	}); err != nil {
		return err
	}
	if err := printBound(ctx, out, cp, serve.GetNamespace(), []string{serve.GetName()}); err != nil {
		return err
	}
	running, err := printPreempted(ctx, out, cp, "research", serve.GetNamespace()+"/"+serve.GetName())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "    research keeps %d of its %d sweep pods (it never had a guarantee; prod got exactly what it is owed)\n", running, len(sweeps))
	return nil
}

// gangPreemptScene shows preemption by a pod group: a lab node full of
// low-priority batch pods, then a high-priority group whose victims are
// chosen for all its workers at once (examples/playground/gang-preempt.yaml).
func gangPreemptScene(ctx context.Context, out io.Writer, p *progress, cp *localcluster.ControlPlane) error {
	objs, err := readFiles(examples.Playground, "playground/gang-preempt.yaml")
	if err != nil {
		return err
	}
	split := slices.IndexFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "PodGroup" })
	if split < 0 {
		return fmt.Errorf("playground/gang-preempt.yaml has no PodGroup")
	}
	first, group := objs[:split], objs[split:]
	batch, workers := podNamesOf(first), podNamesOf(group)
	ns := group[0].GetNamespace()
	fmt.Fprintf(out, "\nGang preemption: pod group %s/%s (%d workers, 2 GPUs each, high priority) arrives at a node full of batch pods\n", ns, group[0].GetName(), len(workers))
	if err := p.step(fmt.Sprintf("Running %d low-priority one-GPU batch pods on gpu-lab2", len(batch)), func() (string, error) {
		return "", applyAndWait(ctx, cp, first, "batch", batch, podRunning)
	}); err != nil {
		return err
	}
	if err := p.step("Creating the pod group and its workers", func() (string, error) {
		return "", applyAndWait(ctx, cp, group, ns, workers, podBound)
	}); err != nil {
		return err
	}
	if err := printBound(ctx, out, cp, ns, workers); err != nil {
		return err
	}
	running, err := printPreempted(ctx, out, cp, "batch", ns+"/"+group[0].GetName())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "    batch keeps %d of its %d pods: the victims were planned for both workers at once and evicted together\n", running, len(batch))
	return nil
}

// podNamesOf lists the names of the Pods among objs.
func podNamesOf(objs []*unstructured.Unstructured) []string {
	var names []string
	for _, o := range objs {
		if o.GetKind() == "Pod" {
			names = append(names, o.GetName())
		}
	}
	return names
}

func podRunning(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }
func podBound(p *v1.Pod) bool   { return p.Spec.NodeName != "" }

// applyAndWait applies objs and waits until every named pod of ns passes
// ready.
func applyAndWait(ctx context.Context, cp *localcluster.ControlPlane, objs []*unstructured.Unstructured, ns string, names []string, ready func(*v1.Pod) bool) error {
	if err := localcluster.Apply(ctx, cp.Config, objs, false); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil || !ready(pod) {
				return false, nil
			}
		}
		return true, nil
	})
}

// printBound prints where each named pod of ns is bound and its devices.
func printBound(ctx context.Context, out io.Writer, cp *localcluster.ControlPlane, ns string, names []string) error {
	for _, name := range names {
		pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		devices := "-"
		if a, err := gpu.UnmarshalAssignment(pod.Annotations[gpu.AnnotationAssignment]); err == nil {
			devices = a.Describe()
		}
		fmt.Fprintf(out, "    %s bound to %s (%s)\n", name, pod.Spec.NodeName, devices)
	}
	return nil
}

// printPreempted prints the Preempted Events of victimNS's pods, naming
// what they made room for, and returns how many of its pods still run.
func printPreempted(ctx context.Context, out io.Writer, cp *localcluster.ControlPlane, victimNS, forWhat string) (int, error) {
	events, err := cp.Client.CoreV1().Events(victimNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	for _, e := range events.Items {
		if e.Reason == "Preempted" {
			fmt.Fprintf(out, "    %s/%s preempted to make room for %s: %s\n", victimNS, e.InvolvedObject.Name, forWhat, e.Message)
		}
	}
	left, err := cp.Client.CoreV1().Pods(victimNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	running := 0
	for _, pod := range left.Items {
		if pod.DeletionTimestamp == nil {
			running++
		}
	}
	return running, nil
}

// listQuotas returns the ElasticQuotas of the workload's namespaces.
func listQuotas(ctx context.Context, cp *localcluster.ControlPlane, namespaces sets.Set[string]) ([]schedv1alpha1.ElasticQuota, error) {
	cfg := rest.CopyConfig(cp.Config)
	cfg.ContentType = "application/json" // custom resources speak JSON only
	client, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	var out []schedv1alpha1.ElasticQuota
	for _, ns := range sets.List(namespaces) {
		list, err := client.SchedulingV1alpha1().ElasticQuotas(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		out = append(out, list.Items...)
	}
	return out, nil
}

// quietKlog sends every klog line (the API server's and the scheduler's) to
// w, including errors, which klog otherwise also copies to stderr.
func quietKlog(w io.Writer) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for k, v := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL", "one_output": "true"} {
		_ = fs.Set(k, v)
	}
	klog.SetOutput(w)
}

// settle waits until every pod of the workload is bound (and started by the
// simulated kubelet) or has been found unschedulable, and nothing changed
// for a moment.
func settle(ctx context.Context, cp *localcluster.ControlPlane, namespaces sets.Set[string], want int, timeout time.Duration) ([]v1.Pod, error) {
	var pods []v1.Pod
	var lastKey string
	stableSince := time.Now()
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods = pods[:0]
		for _, ns := range sets.List(namespaces) {
			list, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			pods = append(pods, list.Items...)
		}
		done := len(pods) >= want
		var key strings.Builder
		for _, pod := range pods {
			state := podState(&pod)
			fmt.Fprintf(&key, "%s/%s=%s;", pod.Namespace, pod.Name, state)
			if state == "" {
				done = false
			}
		}
		if key.String() != lastKey {
			lastKey, stableSince = key.String(), time.Now()
			return false, nil
		}
		return done && time.Since(stableSince) >= 2*time.Second, nil
	})
	if err != nil && ctx.Err() == nil {
		// Report what we have: a pod still in flight is shown as such.
		return pods, nil
	}
	return pods, err
}

// podState is "" while the pod is still being decided.
func podState(p *v1.Pod) string {
	if p.Spec.NodeName != "" {
		if p.Status.Phase == v1.PodRunning {
			return "Running"
		}
		return ""
	}
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
			return "Pending:" + c.Reason
		}
	}
	return ""
}

func readFiles(fsys fs.FS, names ...string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		o, err := localcluster.DecodeYAML(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

// readAll reads every .yaml/.yml file of a directory, in name order.
func readAll(fsys fs.FS, dir string) ([]*unstructured.Unstructured, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) && n != "kustomization.yaml" {
			names = append(names, filepath.ToSlash(filepath.Join(dir, n)))
		}
	}
	sort.Strings(names)
	return readFiles(fsys, names...)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// progress prints one line per step with its duration, so a person sees
// what the playground is doing while the control plane starts.
type progress struct{ out io.Writer }

func (p *progress) step(what string, f func() (string, error)) error {
	fmt.Fprintf(p.out, "  • %s ... ", what)
	start := time.Now()
	detail, err := f()
	took := time.Since(start).Round(100 * time.Millisecond)
	if err != nil {
		fmt.Fprintf(p.out, "failed after %v\n", took)
		return fmt.Errorf("%s: %w", what, err)
	}
	if detail != "" {
		fmt.Fprintf(p.out, "ok, %s (%v)\n", detail, took)
	} else {
		fmt.Fprintf(p.out, "ok (%v)\n", took)
	}
	return nil
}
