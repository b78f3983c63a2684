package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// repoRoot returns the repository root, for reading the shipped manifests.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// readManifest reads a file under manifests/.
func readManifest(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newNamespace creates a namespace unique to the test and deletes it after.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = fmt.Sprintf("%s-%d", strings.Trim(name, "-"), time.Now().UnixNano()%100000)
	ctx := context.Background()
	_, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// No namespace controller runs here: remove the pods explicitly so
		// that later tests' quota accounting does not see them.
		zero := int64(0)
		_ = cp.Client.CoreV1().Pods(name).DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = cp.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// nodeSpec describes a simulated node: nothing runs on it, but the scheduler
// sees its capacity and labels exactly as a kubelet would report them.
type nodeSpec struct {
	name   string
	cpu    string
	memory string
	gpus   int64
	labels map[string]string
	extra  v1.ResourceList
}

// createNodes creates Ready nodes and deletes them when the test ends.
func createNodes(t *testing.T, specs ...nodeSpec) {
	t.Helper()
	ctx := context.Background()
	for _, s := range specs {
		capacity := v1.ResourceList{
			v1.ResourceCPU:    resource.MustParse(s.cpu),
			v1.ResourceMemory: resource.MustParse(s.memory),
			v1.ResourcePods:   resource.MustParse("110"),
		}
		if s.gpus > 0 {
			capacity["nvidia.com/gpu"] = *resource.NewQuantity(s.gpus, resource.DecimalSI)
		}
		for k, v := range s.extra {
			capacity[k] = v
		}
		labels := map[string]string{"kubernetes.io/hostname": s.name}
		for k, v := range s.labels {
			labels[k] = v
		}
		node := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Labels: labels},
			Status: v1.NodeStatus{
				Capacity:    capacity,
				Allocatable: capacity,
				Conditions:  []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
			},
		}
		if err := localcluster.CreateNode(ctx, cp.Client, node); err != nil {
			t.Fatal(err)
		}
		name := s.name
		t.Cleanup(func() {
			_ = cp.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
}

// podSpec is a minimal pod for scheduling tests.
type podSpec struct {
	name          string
	schedulerName string
	cpu           string
	memory        string
	gpus          int64
	annotations   map[string]string
	labels        map[string]string
	nodeSelector  map[string]string
	priorityClass string
	// gates are scheduling gates the pod is created with.
	gates []string
}

func createPod(t *testing.T, ns string, s podSpec) *v1.Pod {
	t.Helper()
	requests := v1.ResourceList{v1.ResourceCPU: resource.MustParse(orDefault(s.cpu, "100m"))}
	if s.memory != "" {
		requests[v1.ResourceMemory] = resource.MustParse(s.memory)
	}
	limits := v1.ResourceList{}
	if s.gpus > 0 {
		q := *resource.NewQuantity(s.gpus, resource.DecimalSI)
		requests["nvidia.com/gpu"], limits["nvidia.com/gpu"] = q, q
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: ns, Annotations: s.annotations, Labels: s.labels},
		Spec: v1.PodSpec{
			SchedulerName:     s.schedulerName,
			PriorityClassName: s.priorityClass,
			NodeSelector:      s.nodeSelector,
			SchedulingGates:   schedulingGates(s.gates),
			Containers: []v1.Container{{
				Name:      "main",
				Image:     "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Requests: requests, Limits: limits},
			}},
		},
	}
	created, err := cp.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created
}

func schedulingGates(names []string) []v1.PodSchedulingGate {
	var gates []v1.PodSchedulingGate
	for _, n := range names {
		gates = append(gates, v1.PodSchedulingGate{Name: n})
	}
	return gates
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// waitBound waits until the pod is bound to a node and returns it.
func waitBound(t *testing.T, ns, name string, timeout time.Duration) *v1.Pod {
	t.Helper()
	var pod *v1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return false, err
			}
			return false, nil
		}
		pod = p
		return p.Spec.NodeName != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not bound within %v: %v (status: %+v)", ns, name, timeout, err, podStatus(pod))
	}
	return pod
}

func podStatus(p *v1.Pod) any {
	if p == nil {
		return nil
	}
	return p.Status.Conditions
}

// startScheduler starts tessera-scheduler with a shipped configuration and
// stops it when the test ends.
func startScheduler(t *testing.T, cfg *rest.Config, config []byte) *localcluster.Scheduler {
	t.Helper()
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "scheduler.kubeconfig")
	if err := localcluster.WriteKubeconfig(cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	s, err := localcluster.StartScheduler(context.Background(), kubeconfig, config, dir)
	if err != nil {
		t.Fatalf("starting scheduler: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// watchBindings calls onBound for every pod of ns ("" for all namespaces)
// that it sees bound to a node, until stop is called. It uses an informer,
// not a bare watch: an informer re-establishes a broken watch, so no binding
// goes unseen.
func watchBindings(t *testing.T, ns string, onBound func(*v1.Pod)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactoryWithOptions(cp.Client, 0, informers.WithNamespace(ns))
	seen := func(obj any) {
		if pod, ok := obj.(*v1.Pod); ok && pod.Spec.NodeName != "" {
			onBound(pod)
		}
	}
	if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, obj any) { seen(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return func() { cancel(); factory.Shutdown() }
}
