//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	"sigs.k8s.io/yaml"

	"github.com/tessera-sched/tessera/pkg/audit"
	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// TestSoak is the randomized soak (`make chaos`): a real API server and
// etcd, two tessera-scheduler processes built from this tree running the
// shipped configuration with leader election on, six simulated 8-GPU
// nodes and two MIG nodes (labels only), and for TESSERA_CHAOS_DURATION
// (default 40s) a random stream, seeded by TESSERA_CHAOS_SEED (default 1),
// of whole-GPU, share and MIG pods,
// gangs of 2-6, pods and gangs finishing or deleted, in two quota-limited
// namespaces and one without a quota, with faults at random points: a
// scheduler replica SIGKILLed (the leader about half the time) and started
// again, and windows in which half of all Bindings fail. After every fault,
// and at the end once faults stop, pkg/audit checks from the API server
// alone that no device was given twice, no quota max exceeded and no pod
// group left partly bound; no pod the test did not delete is lost (a
// preemption victim is deleted with a Preempted Event), and every pod still
// waiting says why.
func TestSoak(t *testing.T) {
	seed := envInt(t, "TESSERA_CHAOS_SEED", 1)
	duration := 40 * time.Second
	if v := os.Getenv("TESSERA_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TESSERA_CHAOS_DURATION=%q: %v", v, err)
		}
		duration = d
	}
	bin := os.Getenv("TESSERA_CHAOS_BIN")
	if bin == "" {
		bin = "../../bin"
	}
	scheduler, err := filepath.Abs(filepath.Join(bin, "tessera-scheduler"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(scheduler); err != nil {
		t.Fatalf("the soak runs the tessera-scheduler binary: %v (make build, or set TESSERA_CHAOS_BIN)", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	const nodes = 6
	cp := startCluster(t, ctx, dir, nodes, "soak", nil)
	// Two MIG nodes as GPU Feature Discovery reports them (mixed strategy):
	// four A100-80GB each, every GPU split 3g.40gb + 2 x 1g.10gb.
	for i := 0; i < 2; i++ {
		capacity := v1.ResourceList{
			v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("512Gi"), v1.ResourcePods: resource.MustParse("110"),
			"nvidia.com/mig-3g.40gb": resource.MustParse("4"), "nvidia.com/mig-1g.10gb": resource.MustParse("8"),
		}
		name := fmt.Sprintf("soak-mig-%d", i)
		node := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				"kubernetes.io/hostname": name, "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.count": "4", "nvidia.com/mig.strategy": "mixed",
			}},
			Status: v1.NodeStatus{Capacity: capacity, Allocatable: capacity, Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}},
		}
		if err := localcluster.CreateNode(ctx, cp.Client, node); err != nil {
			t.Fatal(err)
		}
	}
	namespaces := []string{"team-a", "team-b", "free", "tessera-system"}
	for _, ns := range namespaces {
		labels := NamespaceLabel
		if ns == "tessera-system" {
			labels = nil
		}
		if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	namespaces = namespaces[:3]
	jsonCfg := rest.CopyConfig(cp.Config)
	jsonCfg.ContentType = "application/json"
	sched := versioned.NewForConfigOrDie(jsonCfg).SchedulingV1alpha1()
	for _, ns := range []string{"team-a", "team-b"} {
		eq := &schedv1alpha1.ElasticQuota{ObjectMeta: metav1.ObjectMeta{Name: "quota", Namespace: ns}, Spec: schedv1alpha1.ElasticQuotaSpec{
			Min: v1.ResourceList{"nvidia.com/gpu": resource.MustParse("12")}, Max: v1.ResourceList{"nvidia.com/gpu": resource.MustParse("24")},
		}}
		if _, err := sched.ElasticQuotas(ns).Create(ctx, eq, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	faults, err := InstallBindingFaults(ctx, cp.Client, "free", "soak-0")
	if err != nil {
		t.Fatal(err)
	}

	replicas := []*replica{
		startReplica(t, scheduler, schedulerConfig(t, cp.Kubeconfig, dir), dir, 0),
		startReplica(t, scheduler, schedulerConfig(t, cp.Kubeconfig, dir), dir, 1),
	}
	defer func() {
		for _, r := range replicas {
			r.kill()
		}
		if t.Failed() {
			for _, r := range replicas {
				t.Logf("log of replica %d (%s), last lines:\n%s", r.index, r.log, tail(r.log, 40))
			}
		}
	}()

	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	var created, deleted, finished, kills, windows, audits int
	live := map[string][]string{} // "ns/group or ns/pod" -> pod names, for finishing and deleting whole
	var keys []string
	next := 0
	check := func(when string, grace time.Duration) {
		t.Helper()
		r, err := audit.Check(ctx, cp.Config, audit.Options{GangGrace: grace})
		if err != nil {
			t.Errorf("audit %s: %v", when, err)
			return
		}
		audits++
		for _, v := range r.Violations {
			t.Errorf("audit %s: %s", when, v)
		}
	}
	pod := func(ns, name string, gpus int64, milli int, group string, mig ...string) {
		p := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{}, Annotations: map[string]string{}},
			Spec: v1.PodSpec{SchedulerName: "tessera-scheduler", TerminationGracePeriodSeconds: ptr.To[int64](0), Containers: []v1.Container{{
				Name: "main", Image: "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m")}, Limits: v1.ResourceList{}},
			}}},
		}
		if gpus > 0 {
			p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = *resource.NewQuantity(gpus, resource.DecimalSI)
		}
		if milli > 0 {
			p.Annotations["tessera.dev/gpu-milli"] = strconv.Itoa(milli)
		}
		if len(mig) > 0 {
			p.Spec.Containers[0].Resources.Limits[v1.ResourceName("nvidia.com/mig-"+mig[0])] = resource.MustParse("1")
		}
		if group != "" {
			p.Labels[schedv1alpha1.PodGroupLabel] = group
		}
		if _, err := cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Errorf("creating pod %s/%s: %v", ns, name, err)
			return
		}
		created++
	}
	// recovered measures a fault's recovery: the time from the fault's end
	// until a new CPU-only pod (whose Binding the faults never refuse) is
	// bound, that is, until some replica leads and schedules again.
	recovery := map[string][]time.Duration{}
	recovered := func(kind string) {
		t.Helper()
		next++
		name := fmt.Sprintf("probe-%d0", next)
		start := time.Now()
		pod("free", name, 0, 0, "")
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			p, err := cp.Client.CoreV1().Pods("free").Get(ctx, name, metav1.GetOptions{})
			return err == nil && p.Spec.NodeName != "", nil
		})
		if err != nil {
			t.Errorf("after a %s, no replica bound pod %s within 60s", kind, name)
		}
		recovery[kind] = append(recovery[kind], time.Since(start))
		_ = cp.Client.CoreV1().Pods("free").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	}
	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) && !t.Failed() {
		ns := namespaces[rng.IntN(len(namespaces))]
		switch a := rng.IntN(100); {
		case a < 30: // a pod: whole GPUs, a share or a MIG device
			next++
			name := fmt.Sprintf("p-%d", next)
			switch k := rng.IntN(6); {
			case k < 2:
				pod(ns, name, 0, []int{250, 500, 750}[rng.IntN(3)], "")
			case k == 2:
				pod(ns, name, 0, 0, "", []string{"1g.10gb", "3g.40gb"}[rng.IntN(2)])
			default:
				pod(ns, name, []int64{1, 2, 4, 8}[rng.IntN(4)], 0, "")
			}
			keys = append(keys, ns+"/"+name)
			live[ns+"/"+name] = []string{name}
		case a < 42: // a gang of 2-16
			next++
			group := fmt.Sprintf("g-%d", next)
			size := 2 + rng.IntN(15)
			timeout := int32(30)
			if _, err := sched.PodGroups(ns).Create(ctx, &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Name: group, Namespace: ns}, Spec: schedv1alpha1.PodGroupSpec{MinMember: int32(size), ScheduleTimeoutSeconds: &timeout}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			gpus := int64(1)
			if size <= 6 {
				gpus += int64(rng.IntN(2))
			}
			var members []string
			for m := 0; m < size; m++ {
				name := fmt.Sprintf("%s-m%d", group, m)
				pod(ns, name, gpus, 0, group)
				members = append(members, name)
			}
			keys = append(keys, ns+"/"+group)
			live[ns+"/"+group] = members
		case a < 72 && len(keys) > 0: // something finishes (a gang as a whole)
			i := rng.IntN(len(keys))
			key := keys[i]
			ns, _, _ := strings.Cut(key, "/")
			for _, name := range live[key] {
				p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil || p.Spec.NodeName == "" {
					continue
				}
				p.Status.Phase = v1.PodSucceeded
				if _, err := cp.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err == nil {
					finished++
				}
			}
		case a < 84 && len(keys) > 0: // something is deleted
			i := rng.IntN(len(keys))
			key := keys[i]
			ns, _, _ := strings.Cut(key, "/")
			for _, name := range live[key] {
				if err := cp.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err == nil {
					deleted++
				}
			}
			delete(live, key)
			keys = append(keys[:i], keys[i+1:]...)
		case a < 92: // a replica is killed and comes back
			r := replicas[rng.IntN(len(replicas))]
			r.kill()
			kills++
			time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
			replicas[r.index] = startReplica(t, scheduler, r.config, dir, r.index)
			recovered("replica kill")
			check(fmt.Sprintf("after replica %d was killed (kill %d)", r.index, kills), 60*time.Second)
		default: // half of all Bindings fail for a while
			if err := faults.Set(ctx, true); err != nil {
				t.Fatal(err)
			}
			windows++
			time.Sleep(time.Duration(1000+rng.IntN(3000)) * time.Millisecond)
			if err := faults.Set(ctx, false); err != nil {
				t.Fatal(err)
			}
			recovered("binding-failure window")
			check(fmt.Sprintf("after binding-failure window %d", windows), 60*time.Second)
		}
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
	}

	// Faults stop; the schedulers settle.
	settle := time.Now()
	var report *audit.Report
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		r, err := audit.Check(ctx, cp.Config, audit.Options{GangGrace: 15 * time.Second})
		if err != nil {
			return false, nil
		}
		report = r
		return len(r.Violations) == 0, nil
	})
	if err != nil && report != nil {
		for _, v := range report.Violations {
			t.Errorf("final audit, %.0fs after the faults stopped: %s", time.Since(settle).Seconds(), v)
		}
	}
	// None lost, none stuck without a reason (pods created last may not
	// have been tried yet: give the scheduler a minute).
	waiting := 0
	var noReason []string
	_ = wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(context.Context) (bool, error) {
		waiting, noReason = 0, nil
		for key, names := range live {
			ns, _, _ := strings.Cut(key, "/")
			for _, name := range names {
				p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) && preemptedPod(ctx, cp.Client, ns, name) {
					continue // a victim of reclaim or priority: deleted with an Event saying so
				}
				if err != nil {
					noReason = append(noReason, fmt.Sprintf("pod %s/%s was lost (deleted without a Preempted Event): %v", ns, name, err))
					continue
				}
				if p.Spec.NodeName != "" {
					continue
				}
				waiting++
				reason := false
				for _, c := range p.Status.Conditions {
					reason = reason || c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason != ""
				}
				if !reason {
					noReason = append(noReason, fmt.Sprintf("pod %s/%s waits without a PodScheduled=False reason", ns, name))
				}
			}
		}
		return len(noReason) == 0, nil
	})
	for _, e := range noReason {
		t.Error(e)
	}
	if report != nil {
		t.Logf("seed %d, %s: %d pods created, %d finished, %d deleted; %d replica kills, %d binding-failure windows; %d audits, 0 violations until the end; at the end %d pods not finished, %d of them bound, %d waiting, each with a reason; settled in %.1fs",
			seed, duration, created, finished, deleted, kills, windows, audits, report.Pods, report.Bound, waiting, time.Since(settle).Seconds())
	}
	for kind, ds := range recovery {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		t.Logf("recovery after a %s (until a new pod is bound): %d faults, p50 %.1fs, p99 %.1fs, max %.1fs", kind, len(ds), ds[len(ds)/2].Seconds(), ds[(len(ds)*99)/100].Seconds(), ds[len(ds)-1].Seconds())
	}
}

// preemptedPod says whether the pod was deleted as a preemption victim:
// the scheduler records a Preempted Event on each victim.
func preemptedPod(ctx context.Context, client kubernetes.Interface, ns, name string) bool {
	events, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return false
	}
	for _, e := range events.Items {
		if e.Reason == "Preempted" {
			return true
		}
	}
	return false
}

// replica is one tessera-scheduler process.
type replica struct {
	index  int
	config string
	log    string
	cmd    *exec.Cmd
	// done is closed when the process has exited.
	done chan struct{}
}

func startReplica(t *testing.T, bin, config, dir string, index int) *replica {
	t.Helper()
	log := filepath.Join(dir, fmt.Sprintf("scheduler-%d.log", index))
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", config, "--secure-port=0", "-v=2")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{index: index, config: config, log: log, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(r.done) }()
	return r
}

// kill sends SIGKILL: no lease is released, nothing is cleaned up.
func (r *replica) kill() {
	_ = r.cmd.Process.Kill()
}

// schedulerConfig is manifests/base's configuration, pointed at the test's
// API server, with leases short enough for a soak of seconds.
func schedulerConfig(t *testing.T, kubeconfig, dir string) string {
	t.Helper()
	raw, err := os.ReadFile("../../manifests/base/scheduler-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": kubeconfig, "qps": 200, "burst": 400}
	le := cfg["leaderElection"].(map[string]any)
	le["leaseDuration"], le["renewDeadline"], le["retryPeriod"] = "4s", "3s", "1s"
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "scheduler-config.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func tail(path string, lines int) string {
	data, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
