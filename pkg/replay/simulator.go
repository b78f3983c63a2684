package replay

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkplugins "k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/names"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedulermetrics "k8s.io/kubernetes/pkg/scheduler/metrics"

	"github.com/tessera-sched/tessera/manifests"
	"github.com/tessera-sched/tessera/pkg/internal/fakebind"
	"github.com/tessera-sched/tessera/pkg/plugins"
	"github.com/tessera-sched/tessera/pkg/plugins/gpuplacement"
)

// Profile names a scheduling configuration to replay with.
type Profile string

const (
	// ProfileTessera is the shipped secondary-scheduler profile
	// (manifests/base/scheduler-config.yaml), exactly as deployed.
	ProfileTessera Profile = "tessera"
	// ProfileBaseline keeps every plugin's feasibility checks — including
	// GPUPlacement's device-level fit, without which GPU shares cannot be
	// placed at all — but scores with upstream's default scoring only
	// (NodeResourcesFit LeastAllocated, BalancedAllocation, ...): the
	// difference to ProfileTessera is exactly what Tessera's placement policy
	// buys.
	ProfileBaseline Profile = "baseline"
)

// Simulator schedules pods one at a time with the real scheduler framework
// built from the shipped configuration and the real plugin registry
// (upstream's in-tree plugins plus Tessera's), over a snapshot of simulated
// nodes that it updates as pods are bound. Nothing is ever deleted.
type Simulator struct {
	fw     framework.Framework
	client *clientsetfake.Clientset
	nodes  []fwk.NodeInfo
	byName map[string]*framework.NodeInfo
	rng    *rand.Rand
}

// loadProfile reads the shipped configuration with the scheduler's own
// loader (defaults included) and adapts it for profile p.
func loadProfile(p Profile) (*config.KubeSchedulerProfile, error) {
	data, err := fs.ReadFile(manifests.FS, "base/scheduler-config.yaml")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tessera-replay-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, err
	}
	cfg, err := options.LoadConfigFromFile(klog.Background(), path)
	if err != nil {
		return nil, err
	}
	if len(cfg.Profiles) != 1 {
		return nil, fmt.Errorf("shipped configuration has %d profiles, want 1", len(cfg.Profiles))
	}
	prof := cfg.Profiles[0]
	switch p {
	case ProfileTessera:
	case ProfileBaseline:
		// Upstream's default scoring: GPUPlacement's off, and the CPU/memory
		// scoring the shipped profile turns off back on.
		upstream := func(pl config.Plugin) bool {
			return pl.Name == names.NodeResourcesFit || pl.Name == names.NodeResourcesBalancedAllocation
		}
		prof.Plugins.PreScore.Disabled = slices.DeleteFunc(prof.Plugins.PreScore.Disabled, upstream)
		prof.Plugins.Score.Disabled = slices.DeleteFunc(prof.Plugins.Score.Disabled, upstream)
		prof.Plugins.Score.Disabled = append(prof.Plugins.Score.Disabled, config.Plugin{Name: gpuplacement.Name})
	default:
		return nil, fmt.Errorf("unknown profile %q (want %q or %q)", p, ProfileTessera, ProfileBaseline)
	}
	// The trace's pods claim no DRA devices; the DRA plugin needs the
	// scheduler's DRA manager, which the replay does not run.
	// (Disabled lists are applied while the configuration is defaulted, so
	// the plugin is removed from the already-defaulted enabled list.)
	enabled := prof.Plugins.MultiPoint.Enabled[:0:0]
	for _, pl := range prof.Plugins.MultiPoint.Enabled {
		if pl.Name != "DynamicResources" {
			enabled = append(enabled, pl)
		}
	}
	prof.Plugins.MultiPoint.Enabled = enabled
	return &prof, nil
}

// NewSimulator builds the framework for profile p over the given nodes.
// seed drives the random choice among equally scored nodes, as upstream's
// selectHost breaks ties at random.
func NewSimulator(ctx context.Context, p Profile, nodes []*v1.Node, seed int64) (*Simulator, error) {
	prof, err := loadProfile(p)
	if err != nil {
		return nil, err
	}
	// The framework records into the scheduler's metrics, which the
	// scheduler binary registers at start-up.
	schedulermetrics.Register()
	registry := frameworkplugins.NewInTreeRegistry()
	if err := registry.Merge(plugins.Registry()); err != nil {
		return nil, err
	}
	snapshot := internalcache.NewSnapshot(nil, nodes)
	client := clientsetfake.NewSimpleClientset()
	fakebind.Install(client)
	fw, err := frameworkruntime.NewFramework(ctx, registry, prof,
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithClientSet(client),
		frameworkruntime.WithInformerFactory(informers.NewSharedInformerFactory(client, 0)),
		frameworkruntime.WithEventRecorder(&events.FakeRecorder{}),
	)
	if err != nil {
		return nil, fmt.Errorf("building the %s framework: %w", p, err)
	}
	s := &Simulator{fw: fw, client: client, byName: map[string]*framework.NodeInfo{}, rng: rand.New(rand.NewSource(seed))}
	list, err := snapshot.NodeInfos().List()
	if err != nil {
		return nil, err
	}
	// The snapshot lists nodes in map order, which differs from run to run;
	// the random tie-break among equal scores then picks different nodes
	// for the same seed. Sorting makes a seed's replay reproducible.
	slices.SortFunc(list, func(a, b fwk.NodeInfo) int { return strings.Compare(a.Node().Name, b.Node().Name) })
	for _, ni := range list {
		concrete, ok := ni.(*framework.NodeInfo)
		if !ok {
			return nil, fmt.Errorf("unexpected NodeInfo type %T", ni)
		}
		s.nodes = append(s.nodes, ni)
		s.byName[ni.Node().Name] = concrete
	}
	return s, nil
}

// Schedule runs one scheduling cycle for pod — PreFilter, Filter on every
// node (percentageOfNodesToScore 100, like the paper's simulator), PreScore,
// Score, a random pick among the best, Reserve, Bind — and binds it into
// the snapshot. It returns the node, or "" when the pod does not fit (the
// pod is then dropped, never retried).
func (s *Simulator) Schedule(ctx context.Context, pod *v1.Pod) (string, error) {
	state := framework.NewCycleState()
	pfr, st, _ := s.fw.RunPreFilterPlugins(ctx, state, pod)
	if !st.IsSuccess() {
		if st.IsRejected() {
			return "", nil
		}
		return "", st.AsError()
	}
	candidates := s.nodes
	if pfr != nil && !pfr.AllNodes() {
		candidates = candidates[:0:0]
		for _, ni := range s.nodes {
			if pfr.NodeNames.Has(ni.Node().Name) {
				candidates = append(candidates, ni)
			}
		}
	}
	fits := make([]bool, len(candidates))
	s.fw.Parallelizer().Until(ctx, len(candidates), func(i int) {
		fits[i] = s.fw.RunFilterPlugins(ctx, state, pod, candidates[i]).IsSuccess()
	}, "Filter")
	feasible := make([]fwk.NodeInfo, 0, len(candidates))
	for i, ok := range fits {
		if ok {
			feasible = append(feasible, candidates[i])
		}
	}
	if len(feasible) == 0 {
		return "", nil
	}
	node := feasible[0].Node().Name
	if len(feasible) > 1 {
		if st := s.fw.RunPreScorePlugins(ctx, state, pod, feasible); !st.IsSuccess() {
			return "", st.AsError()
		}
		scores, st := s.fw.RunScorePlugins(ctx, state, pod, feasible)
		if !st.IsSuccess() {
			return "", st.AsError()
		}
		node = s.selectHost(scores)
	}
	if st := s.fw.RunReservePluginsReserve(ctx, state, pod, node); !st.IsSuccess() {
		s.fw.RunReservePluginsUnreserve(ctx, state, pod, node)
		return "", nil
	}
	// Bind through the fake API server, as the real scheduler would: the
	// Bind plugins (GPUPlacement's carries the device assignment) write the
	// pod that the node then holds.
	if _, err := s.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	if st := s.fw.RunBindPlugins(ctx, state, pod, node); !st.IsSuccess() {
		return "", st.AsError()
	}
	bound, err := s.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	bound = bound.DeepCopy()
	bound.Spec.NodeName = node
	s.byName[node].AddPod(bound)
	return node, nil
}

// selectHost picks the highest total score, breaking ties uniformly at
// random (reservoir sampling), as upstream's scheduler does.
func (s *Simulator) selectHost(scores []fwk.NodePluginScores) string {
	best, count := 0, 1
	for i := 1; i < len(scores); i++ {
		switch {
		case scores[i].TotalScore > scores[best].TotalScore:
			best, count = i, 1
		case scores[i].TotalScore == scores[best].TotalScore:
			count++
			if s.rng.Intn(count) == 0 {
				best = i
			}
		}
	}
	return scores[best].Name
}

// NodeInfos returns the simulated nodes with the pods bound to them.
func (s *Simulator) NodeInfos() []fwk.NodeInfo { return s.nodes }
