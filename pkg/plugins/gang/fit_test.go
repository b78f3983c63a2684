package gang

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	gangcore "github.com/tessera-sched/tessera/pkg/gang"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/kube"
	"github.com/tessera-sched/tessera/pkg/quota"
)

// These tests drive the whole-group simulation and the preemption planner
// over framework NodeInfo fixtures, without a scheduler or API server.

func h100Node(name string, gpus string, labels ...string) *v1.Node {
	w := st.MakeNode().Name(name).Label(kube.LabelProduct, "NVIDIA-H100-80GB-HBM3").
		Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "96", v1.ResourceMemory: "1Ti", v1.ResourcePods: "110", kube.ResourceGPU: gpus})
	for i := 0; i+1 < len(labels); i += 2 {
		w = w.Label(labels[i], labels[i+1])
	}
	return w.Obj()
}

// member is a pending member of group g asking for gpus whole GPUs.
func member(name, group string, gpus int, annotations ...string) *v1.Pod {
	w := st.MakePod().Namespace("team").Name(name).UID(name).Label(schedv1alpha1.PodGroupLabel, group).
		Req(map[v1.ResourceName]string{v1.ResourceCPU: "1", kube.ResourceGPU: fmt.Sprint(gpus)})
	for i := 0; i+1 < len(annotations); i += 2 {
		w = w.Annotation(annotations[i], annotations[i+1])
	}
	return w.Obj()
}

// running is a pod bound to node holding the given GPUs (by annotation).
func running(name, ns, node string, priority int32, gpus ...int) *v1.Pod {
	a, err := gpu.MarshalAssignment(gpu.Assignment{GPUs: gpus})
	if err != nil {
		panic(err)
	}
	p := st.MakePod().Namespace(ns).Name(name).UID(name).Node(node).Priority(priority).
		Req(map[v1.ResourceName]string{v1.ResourceCPU: "1", kube.ResourceGPU: fmt.Sprint(len(gpus))}).
		Annotation(kube.AnnotationAssignment, a).Obj()
	p.Status.StartTime = &metav1.Time{Time: time.Unix(1000, 0)}
	return p
}

func nodeInfo(n *v1.Node, pods ...*v1.Pod) fwk.NodeInfo {
	ni := framework.NewNodeInfo(pods...)
	ni.SetNode(n)
	return ni
}

// byLabels is the GPU state source of a profile without GPUPlacement.
func byLabels(n *v1.Node, pods []*v1.Pod) *kube.NodeGPUs {
	return kube.LabelNodeGPUs(klog.Background(), n, pods)
}

// twoCliques is a GPU state source that knows what the labels do not: each
// node's eight GPUs are two NVLink cliques of four, as an agent would
// publish them.
func twoCliques(n *v1.Node, pods []*v1.Pod) *kube.NodeGPUs {
	t := gpu.DefaultTopology("NVIDIA-H100-80GB-HBM3", 8)
	for i := range t.GPUs {
		t.GPUs[i].Domain = []string{"clique-a", "clique-b"}[i/4]
	}
	return kube.BuildNodeGPUs(klog.Background(), &kube.NodeTopology{Topo: t, Source: "NodeGPUTopology"}, pods, nil)
}

func sizes(pods []*v1.Pod) []gangcore.Member {
	out := make([]gangcore.Member, len(pods))
	for i, p := range pods {
		if d, err := kube.ParseDemand(p); err == nil {
			out[i] = gangcore.Member{Size: d.RequestOn("").GPUEquivalentMilli()}
		}
	}
	return out
}

func TestGroupSim(t *testing.T) {
	required := []string{kube.AnnotationTopology, "required"}
	tainted := h100Node("tainted", "8")
	tainted.Spec.Taints = []v1.Taint{{Key: "dedicated", Value: "infer", Effect: v1.TaintEffectNoSchedule}}
	single := st.MakeNode().Name("mig-single").
		Label(kube.LabelProduct, "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb").Label(kube.LabelMIGStrategy, "single").
		Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "96", v1.ResourceMemory: "1Ti", v1.ResourcePods: "110", kube.ResourceGPU: "14"}).Obj()
	tests := []struct {
		name       string
		group      gangcore.Group
		pods       []*v1.Pod
		nodes      []fwk.NodeInfo
		gpus       func(*v1.Node, []*v1.Pod) *kube.NodeGPUs
		empty      bool
		wantPlaced int
		wantOK     bool
	}{
		{
			name:       "two 4-GPU members share an empty 8-GPU node",
			pods:       []*v1.Pod{member("a", "g", 4), member("b", "g", 4)},
			nodes:      []fwk.NodeInfo{nodeInfo(h100Node("n1", "8"))},
			wantPlaced: 2, wantOK: true,
		},
		{
			name:       "a held GPU leaves room for one",
			pods:       []*v1.Pod{member("a", "g", 4), member("b", "g", 4)},
			nodes:      []fwk.NodeInfo{nodeInfo(h100Node("n1", "8"), running("r", "other", "n1", 0, 0))},
			wantPlaced: 1,
		},
		{
			name:       "the same, on empty nodes, fits",
			pods:       []*v1.Pod{member("a", "g", 4), member("b", "g", 4)},
			nodes:      []fwk.NodeInfo{nodeInfo(h100Node("n1", "8"), running("r", "other", "n1", 0, 0))},
			empty:      true,
			wantPlaced: 2, wantOK: true,
		},
		{
			name:       "labels see one NVSwitch domain: two 3-GPU members fit beside a 2-GPU pod",
			pods:       []*v1.Pod{member("a", "g", 3, required...), member("b", "g", 3, required...)},
			nodes:      []fwk.NodeInfo{nodeInfo(h100Node("n1", "8"), running("r", "other", "n1", 0, 0, 1))},
			wantPlaced: 2, wantOK: true,
		},
		{
			name:       "the published cliques do not: one clique has three free GPUs",
			pods:       []*v1.Pod{member("a", "g", 3, required...), member("b", "g", 3, required...)},
			nodes:      []fwk.NodeInfo{nodeInfo(h100Node("n1", "8"), running("r", "other", "n1", 0, 0, 1))},
			gpus:       twoCliques,
			wantPlaced: 1,
		},
		{
			name:  "required topology domain: no zone holds both",
			group: gangcore.Group{Topology: gangcore.Topology{Key: "zone", Required: true}},
			pods:  []*v1.Pod{member("a", "g", 8), member("b", "g", 8)},
			nodes: []fwk.NodeInfo{
				nodeInfo(h100Node("n1", "8", "zone", "z1")), nodeInfo(h100Node("n2", "8", "zone", "z2")),
			},
			wantPlaced: 0, // a required domain is all or nothing
		},
		{
			name:  "spread over nodes when the domain allows it",
			group: gangcore.Group{Topology: gangcore.Topology{Key: "zone", Required: true}},
			pods:  []*v1.Pod{member("a", "g", 8), member("b", "g", 8)},
			nodes: []fwk.NodeInfo{
				nodeInfo(h100Node("n1", "8", "zone", "z1")), nodeInfo(h100Node("n2", "8", "zone", "z1")),
			},
			wantPlaced: 2, wantOK: true,
		},
		{
			name:       "an untolerated NoSchedule taint keeps members off",
			pods:       []*v1.Pod{member("a", "g", 1)},
			nodes:      []fwk.NodeInfo{nodeInfo(tainted)},
			wantPlaced: 0,
		},
		{
			name:       "on a MIG single-strategy node whole GPUs are MIG devices",
			pods:       []*v1.Pod{member("a", "g", 7), member("b", "g", 7)},
			nodes:      []fwk.NodeInfo{nodeInfo(single)},
			wantPlaced: 2, wantOK: true,
		},
		{
			name:       "a member with a malformed share never fits",
			pods:       []*v1.Pod{member("a", "g", 0, kube.AnnotationShare, "lots")},
			nodes:      []fwk.NodeInfo{nodeInfo(h100Node("n1", "8"))},
			wantPlaced: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gpus := tt.gpus
			if gpus == nil {
				gpus = byLabels
			}
			sim := newGroupSim(tt.group, len(tt.pods), tt.pods, sizes(tt.pods), tt.nodes, tt.empty, nil, gpus)
			_, placed, ok := sim.run()
			if placed != tt.wantPlaced || ok != tt.wantOK {
				t.Errorf("run() placed %d, ok %v; want %d, %v", placed, ok, tt.wantPlaced, tt.wantOK)
			}
			// FitsAll undoes what it assumed: a second run answers the same.
			if _, again, ok2 := sim.run(); again != placed || ok2 != ok {
				t.Errorf("second run() placed %d, ok %v; first %d, %v", again, ok2, placed, ok)
			}
		})
	}
}

func TestGroupSimRunWithout(t *testing.T) {
	pods := []*v1.Pod{member("a", "g", 4), member("b", "g", 4)}
	n1 := nodeInfo(h100Node("n1", "8"), running("r1", "other", "n1", 0, 0, 1, 2, 3))
	n2 := nodeInfo(h100Node("n2", "8"), running("r2", "other", "n2", 0, 0, 1, 2, 3, 4, 5, 6, 7))
	sim := newGroupSim(gangcore.Group{}, 2, pods, sizes(pods), []fwk.NodeInfo{n1, n2}, false, nil, byLabels)
	if _, placed, ok := sim.run(); ok || placed != 1 {
		t.Fatalf("as is: placed %d, ok %v; want 1 of 2", placed, ok)
	}
	if !sim.runWithout(map[types.UID]bool{"r1": true}, map[string]bool{"n1": true}) {
		t.Error("without r1 both members fit n1, but runWithout says no")
	}
	if sim.runWithout(map[types.UID]bool{"r1": true}, nil) {
		t.Error("a victim whose node is not rebuilt must not free anything")
	}
	// The simulation is unchanged by what-ifs.
	if _, placed, ok := sim.run(); ok || placed != 1 {
		t.Errorf("after what-ifs: placed %d, ok %v; want 1 of 2", placed, ok)
	}
	// Terminating pods count as gone when the simulation is told so.
	gone := func(p *v1.Pod) bool { return p.Name == "r2" }
	if _, _, ok := newGroupSim(gangcore.Group{}, 2, pods, sizes(pods), []fwk.NodeInfo{n1, n2}, false, gone, byLabels).run(); !ok {
		t.Error("with r2 gone, both members fit n2")
	}
}

func TestPlanVictims(t *testing.T) {
	key := gangcore.NewGroupKey("team", "g")
	members := func() []*v1.Pod { return []*v1.Pod{member("a", "g", 4), member("b", "g", 4)} }
	deleting := running("leaving", "team", "n1", 0, 4, 5, 6, 7)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Unix(2000, 0)}
	tests := []struct {
		name     string
		nodes    []fwk.NodeInfo
		priority int32
		// quotas are the namespaces' ElasticQuota mins (max unlimited).
		quotas      map[string]quota.Resources
		wantVictims []string
		wantMsg     string
	}{
		{
			name: "the lowest-priority pods that make room, and no more",
			nodes: []fwk.NodeInfo{
				nodeInfo(h100Node("n1", "8"), running("low-1", "team", "n1", 1, 0, 1, 2, 3), running("low-2", "team", "n1", 1, 4, 5, 6, 7)),
				nodeInfo(h100Node("n2", "8"), running("mid", "team", "n2", 5, 0, 1, 2, 3, 4, 5, 6, 7)),
			},
			priority:    10,
			wantVictims: []string{"low-1", "low-2"},
			wantMsg:     "preempts 2 pods to make room for all 2 members",
		},
		{
			name: "pods of higher priority are not victims: nothing is evicted",
			nodes: []fwk.NodeInfo{
				nodeInfo(h100Node("n1", "8"), running("high", "team", "n1", 100, 0, 1, 2, 3, 4, 5, 6, 7)),
			},
			priority: 10,
			wantMsg:  "cannot be placed whole even by preemption",
		},
		{
			name: "without quotas anywhere, lower priority decides across namespaces",
			nodes: []fwk.NodeInfo{
				nodeInfo(h100Node("n1", "8"), running("theirs", "other", "n1", 0, 0, 1, 2, 3, 4, 5, 6, 7)),
			},
			priority:    10,
			wantVictims: []string{"theirs"},
			wantMsg:     "preempts 1 pods",
		},
		{
			name: "a namespace within its quota's min keeps its pods from a group without a quota",
			nodes: []fwk.NodeInfo{
				nodeInfo(h100Node("n1", "8"), running("theirs", "other", "n1", 0, 0, 1, 2, 3, 4, 5, 6, 7)),
			},
			quotas:   map[string]quota.Resources{"other": {quota.ResourceNvidiaGPU: 8}},
			priority: 10,
			wantMsg:  "cannot be placed whole even by preemption",
		},
		{
			name: "room being given back needs no victims",
			nodes: []fwk.NodeInfo{
				nodeInfo(h100Node("n1", "8"), running("low", "team", "n1", 1, 0, 1, 2, 3), deleting),
			},
			priority:    10,
			wantVictims: []string{"low"},
			wantMsg:     "preempts 1 pods",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pods := members()
			sim := newGroupSim(gangcore.Group{}, 2, pods, sizes(pods), tt.nodes, false, terminating, byLabels)
			tracker := quota.NewTracker()
			for ns, min := range tt.quotas {
				if err := tracker.SetQuota(ns+"/q", quota.Quota{Namespace: ns, Min: min}); err != nil {
					t.Fatal(err)
				}
			}
			for _, ni := range tt.nodes {
				for _, pi := range ni.GetPods() {
					tracker.AddPod(kube.QuotaUsage(pi.GetPod(), ni.Node().Name))
				}
			}
			victims, msg := planVictims(key, tt.priority, sim, tt.nodes, tracker)
			var names []string
			for _, v := range victims {
				names = append(names, v.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.wantVictims, ",") {
				t.Errorf("victims %v, want %v (%s)", names, tt.wantVictims, msg)
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q, want it to contain %q", msg, tt.wantMsg)
			}
		})
	}
}

// TestPlanVictimsFreesLocalGPUs: among victim sets as cheap by the quota
// rules, the group's preemption takes the one whose freed GPUs give its
// multi-GPU member one NVLink clique. Eight 1-GPU pods of one priority fill
// a node of two cliques; the four started last sit two in each clique, so
// by age alone a 4-GPU member would get GPUs across both.
func TestPlanVictimsFreesLocalGPUs(t *testing.T) {
	key := gangcore.NewGroupKey("team", "g")
	var pods []*v1.Pod
	// GPU of each pod, oldest first: the newest four are on 0, 1, 4, 5.
	for i, g := range []int{2, 3, 6, 7, 0, 4, 1, 5} {
		p := running(fmt.Sprintf("r%d", i), "team", "n1", 1, g)
		p.Status.StartTime = &metav1.Time{Time: time.Unix(int64(1000+i), 0)}
		pods = append(pods, p)
	}
	nodes := []fwk.NodeInfo{nodeInfo(h100Node("n1", "8"), pods...)}
	members := []*v1.Pod{member("big", "g", 4)}
	sim := newGroupSim(gangcore.Group{}, 1, members, sizes(members), nodes, false, terminating, twoCliques)
	local := *sim // as planPreemption does: the node states are shared
	local.local = true

	byAge, _ := planVictims(key, 10, sim, nodes, quota.NewTracker())
	victims, msg := planLocalVictims(key, 10, sim, &local, nodes, quota.NewTracker())
	cliqueOf := func(vs []*v1.Pod) map[int]bool {
		out := map[int]bool{}
		for _, v := range vs {
			a, err := gpu.UnmarshalAssignment(v.Annotations[kube.AnnotationAssignment])
			if err != nil {
				t.Fatal(err)
			}
			out[a.GPUs[0]/4] = true
		}
		return out
	}
	if len(byAge) != 4 || len(cliqueOf(byAge)) != 2 {
		t.Fatalf("set-up: by age alone the victims are %d pods over cliques %v, want 4 over both", len(byAge), cliqueOf(byAge))
	}
	if len(victims) != 4 || len(cliqueOf(victims)) != 1 {
		t.Errorf("victims: %d pods over cliques %v (%s), want 4 pods of one clique", len(victims), cliqueOf(victims), msg)
	}
}
