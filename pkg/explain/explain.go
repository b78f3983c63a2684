// Package explain answers "why is my pod pending, or why is it there?" from
// the API server alone, for `tessera explain`.
//
// It does not guess from messages: it builds the real scheduler framework
// from a Tessera profile (the shipped configuration, or the cluster's own)
// with the real plugins, over a snapshot of the cluster as it is now, and
// runs the pod's PreFilter, every node's Filter and the feasible nodes'
// Score, exactly as a scheduling cycle would. Beside that it reads the
// arithmetic behind the verdicts: the node's free devices (GPUPlacement's
// view), the namespace's quota (ElasticQuota's ledger), the pod group's
// members and status, the device assignment and the pod's Events.
//
// Explain only reads: every request other than a read is refused before
// it leaves the process, so the plugins' own writes (statuses, Events) go
// nowhere. What it cannot see is what lives only in the running
// scheduler's memory: pods reserved at Permit, who holds the gang assembly
// slot, back-off timers; the report says where that matters.
package explain

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkplugins "k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedulermetrics "k8s.io/kubernetes/pkg/scheduler/metrics"

	"github.com/tessera-sched/tessera/manifests"
	"github.com/tessera-sched/tessera/pkg/plugins"
)

// Options configure an explanation.
type Options struct {
	// Config reaches the API server. Only reads are sent.
	Config *rest.Config
	// SchedulerConfig is the path of the KubeSchedulerConfiguration the
	// cluster's Tessera runs; "" uses the shipped ones
	// (manifests/base and manifests/default-scheduler), whose profiles are
	// tessera-scheduler and default-scheduler.
	SchedulerConfig string
}

// ReadOnly returns a copy of cfg whose requests other than GET and HEAD
// fail in the client with an error saying so: explain's plugins write
// statuses and Events as the scheduler's do, and must not.
func ReadOnly(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return readOnly{rt} })
	return c
}

type readOnly struct{ next http.RoundTripper }

func (r readOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return nil, fmt.Errorf("tessera explain only reads: %s %s not sent", req.Method, req.URL.Path)
	}
	return r.next.RoundTrip(req)
}

// profiles loads the scheduler configuration's profiles by scheduler name,
// defaulted as the scheduler defaults them.
func profiles(path string) (map[string]*config.KubeSchedulerProfile, error) {
	paths := []string{path}
	if path == "" {
		dir, err := os.MkdirTemp("", "tessera-explain-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		paths = nil
		for _, f := range []string{"base/scheduler-config.yaml", "default-scheduler/scheduler-config.yaml"} {
			data, err := fs.ReadFile(manifests.FS, f)
			if err != nil {
				return nil, err
			}
			p := filepath.Join(dir, strings.ReplaceAll(f, "/", "-"))
			if err := os.WriteFile(p, data, 0o600); err != nil {
				return nil, err
			}
			paths = append(paths, p)
		}
	}
	out := map[string]*config.KubeSchedulerProfile{}
	for _, p := range paths {
		cfg, err := options.LoadConfigFromFile(klog.Background(), p)
		if err != nil {
			return nil, fmt.Errorf("scheduler configuration %s: %w", p, err)
		}
		for i := range cfg.Profiles {
			prof := &cfg.Profiles[i]
			// DRA's plugin needs the scheduler's DRA manager, which
			// explain does not run; pods with claims are explained
			// without it (and the report says so).
			prof.Plugins.MultiPoint.Enabled = slices.DeleteFunc(prof.Plugins.MultiPoint.Enabled, func(pl config.Plugin) bool { return pl.Name == "DynamicResources" })
			out[prof.SchedulerName] = prof
		}
	}
	return out, nil
}

// mainProfile is the configuration's tessera-scheduler profile, or its
// first by name, for the reports that are about the cluster rather than
// one pod.
func mainProfile(path string) (*config.KubeSchedulerProfile, error) {
	profs, err := profiles(path)
	if err != nil {
		return nil, err
	}
	if p := profs["tessera-scheduler"]; p != nil {
		return p, nil
	}
	names := make([]string, 0, len(profs))
	for n := range profs {
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("scheduler configuration %s has no profiles", path)
	}
	sort.Strings(names)
	return profs[names[0]], nil
}

// cluster is what one explanation reads: the objects listed once, and a
// framework over them.
type cluster struct {
	client kubernetes.Interface
	nodes  []*v1.Node
	pods   []*v1.Pod
	fw     framework.Framework
	// infos are the snapshot's NodeInfos, by node name order.
	infos []fwk.NodeInfo
	stop  context.CancelFunc
}

// load lists nodes and pods and, when prof is set, builds its framework
// over a snapshot of the bound pods less the pod without (by UID).
func load(ctx context.Context, o Options, prof *config.KubeSchedulerProfile, without *v1.Pod) (*cluster, error) {
	cfg := ReadOnly(o.Config)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	nodeList, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	podList, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	c := &cluster{client: client}
	for i := range nodeList.Items {
		c.nodes = append(c.nodes, &nodeList.Items[i])
	}
	var bound []*v1.Pod
	for i := range podList.Items {
		p := &podList.Items[i]
		c.pods = append(c.pods, p)
		if p.Spec.NodeName != "" && !terminated(p) && (without == nil || p.UID != without.UID) {
			bound = append(bound, p)
		}
	}
	if prof == nil {
		return c, nil
	}
	schedulermetrics.Register()
	registry := frameworkplugins.NewInTreeRegistry()
	if err := registry.Merge(plugins.Registry()); err != nil {
		return nil, err
	}
	snapshot := internalcache.NewSnapshot(bound, c.nodes)
	fctx, cancel := context.WithCancel(ctx)
	c.stop = cancel
	factory := informers.NewSharedInformerFactory(client, 0)
	fw, err := frameworkruntime.NewFramework(fctx, registry, prof,
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithClientSet(client),
		frameworkruntime.WithKubeConfig(cfg),
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithEventRecorder(&events.FakeRecorder{}),
	)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("building the %s profile: %w", prof.SchedulerName, err)
	}
	factory.Start(fctx.Done())
	for typ, ok := range factory.WaitForCacheSync(fctx.Done()) {
		if !ok {
			cancel()
			return nil, fmt.Errorf("informer for %v did not sync", typ)
		}
	}
	// The plugins' handlers run after the informers' stores fill.
	time.Sleep(200 * time.Millisecond)
	c.fw = fw
	infos, err := snapshot.NodeInfos().List()
	if err != nil {
		cancel()
		return nil, err
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Node().Name < infos[j].Node().Name })
	c.infos = infos
	return c, nil
}

func (c *cluster) close() {
	if c.stop != nil {
		c.stop()
	}
}

func terminated(p *v1.Pod) bool {
	return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
}

// events returns the last n Events about the object with the given UID,
// oldest first.
func (c *cluster) events(ctx context.Context, ns string, uid string, n int) []Event {
	list, err := c.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", uid).String()})
	if err != nil {
		return nil
	}
	items := list.Items
	sort.SliceStable(items, func(i, j int) bool { return eventTime(&items[i]).Before(eventTime(&items[j])) })
	if len(items) > n {
		items = items[len(items)-n:]
	}
	var out []Event
	for _, e := range items {
		out = append(out, Event{Time: eventTime(&e), Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count})
	}
	return out
}

func eventTime(e *v1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// Event is one Event about the explained object.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Count   int32     `json:"count,omitempty"`
}

func writeEvents(w io.Writer, evs []Event) {
	if len(evs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nEvents (latest last):")
	for _, e := range evs {
		count := ""
		if e.Count > 1 {
			count = fmt.Sprintf(" (x%d)", e.Count)
		}
		fmt.Fprintf(w, "  %s  %-7s %s%s: %s\n", e.Time.UTC().Format(time.RFC3339), e.Type, e.Reason, count, e.Message)
	}
}
