package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// DefaultRefreshInterval is how old status.lastChecked may grow before the
// agent rewrites an unchanged object just to refresh it. Refreshing on every
// check would cost one write per node per interval for no news; never
// refreshing would leave nobody able to tell a live agent from a dead one.
const DefaultRefreshInterval = 10 * time.Minute

// ErrNoGPUs is returned by Publisher.Sync when discovery found no GPUs. The
// agent then publishes nothing: an empty NodeGPUTopology would tell the
// scheduler that the node has no GPUs, while no object lets it fall back to
// the node's GPU Feature Discovery labels.
var ErrNoGPUs = errors.New("no GPUs found")

// Result says what one Publisher.Sync did.
type Result string

const (
	// ResultCreated: the node had no NodeGPUTopology; one was created.
	ResultCreated Result = "Created"
	// ResultUpdated: the topology (or the driver or agent version) changed
	// and the object was updated.
	ResultUpdated Result = "Updated"
	// ResultRefreshed: nothing changed but status.lastChecked was older
	// than the refresh interval and was renewed.
	ResultRefreshed Result = "Refreshed"
	// ResultUnchanged: the published object is current; nothing written.
	ResultUnchanged Result = "Unchanged"
	// ResultKept: discovery failed or found no GPUs, so the published
	// topology, which has GPUs, was left as it is.
	ResultKept Result = "Kept"
	// ResultSkipped: nothing could be published and nothing was; the error
	// says why.
	ResultSkipped Result = "Skipped"
)

// Publisher keeps one node's NodeGPUTopology in step with what discovery
// finds.
type Publisher struct {
	// Client writes tesserav1alpha1.NodeGPUTopologyResource.
	Client dynamic.Interface
	// NodeName is the node, and so the object, name.
	NodeName string
	// AgentVersion is recorded in status.agentVersion.
	AgentVersion string
	// Discover finds the node's GPUs; in the agent it is a closure over
	// Discover with the NVML library and options.
	Discover func() (tesserav1alpha1.NodeGPUTopologySpec, Info, error)
	// RefreshInterval overrides DefaultRefreshInterval when positive.
	RefreshInterval time.Duration
	// Clock is the time source; nil means the real clock. Tests set a fake.
	Clock clock.PassiveClock
	// Logger receives what the publisher does. The zero value discards it.
	Logger klog.Logger
	// Trigger, if set, makes Run publish at once: the agent changed the
	// node's MIG layout.
	Trigger <-chan struct{}
}

// Run calls Sync now and then every interval, and whenever Trigger
// receives, until ctx is done, logging what each call did. Failures are
// retried at the next interval.
func (p *Publisher) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		p.syncAndLog(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.Trigger:
		}
	}
}

func (p *Publisher) syncAndLog(ctx context.Context) {
	res, err := p.Sync(ctx)
	switch {
	case err != nil:
		p.Logger.Error(err, "Could not publish the node's GPU topology", "node", p.NodeName, "result", res)
	case res == ResultUnchanged || res == ResultRefreshed:
		p.Logger.V(4).Info("GPU topology unchanged", "node", p.NodeName, "result", res)
	default:
		p.Logger.Info("Published the node's GPU topology", "node", p.NodeName, "result", res)
	}
}

// Sync discovers the node's GPUs once and brings the published object in
// line: it creates the object if there is none, updates it when the spec
// (or the driver or agent version) changed, refreshes status.lastChecked
// when it is older than the refresh interval, and otherwise writes nothing.
//
// It never replaces a published topology that has GPUs with an empty or
// failed one: when discovery fails or finds no GPUs while such an object
// exists, the object is kept (ResultKept) and the error returned, because a
// driver restart or a transient NVML failure must not make the scheduler
// forget the node's GPUs. A spec that the scheduler would reject (see
// NodeGPUTopologySpec.Topology) is not published either.
func (p *Publisher) Sync(ctx context.Context) (Result, error) {
	if p.NodeName == "" {
		return ResultSkipped, errors.New("no node name")
	}
	spec, info, discoverErr := p.Discover()
	if discoverErr == nil && len(spec.GPUs) == 0 {
		discoverErr = ErrNoGPUs
	}
	if discoverErr == nil {
		if _, err := spec.Topology(); err != nil {
			discoverErr = fmt.Errorf("discovered topology is not valid: %w", err)
		}
	}

	res := p.client()
	current, err := res.Get(ctx, p.NodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		current = nil
	case err != nil:
		return ResultSkipped, fmt.Errorf("reading NodeGPUTopology %s: %w", p.NodeName, err)
	}
	var published *tesserav1alpha1.NodeGPUTopology
	if current != nil {
		if published, err = fromUnstructured(current); err != nil {
			p.Logger.Info("Published NodeGPUTopology cannot be decoded; it will be replaced", "node", p.NodeName, "err", err)
			published = nil
		}
	}

	if discoverErr != nil {
		if published != nil && len(published.Spec.GPUs) > 0 {
			return ResultKept, fmt.Errorf("keeping the published topology of %d GPUs: %w", len(published.Spec.GPUs), discoverErr)
		}
		return ResultSkipped, discoverErr
	}

	now := metav1.NewTime(p.now())
	desired := NewObject(p.NodeName, spec, info, p.AgentVersion, now)
	if current == nil {
		u, err := ToUnstructured(desired)
		if err != nil {
			return ResultSkipped, err
		}
		if _, err := res.Create(ctx, u, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
			return ResultSkipped, fmt.Errorf("creating NodeGPUTopology %s: %w", p.NodeName, err)
		}
		return ResultCreated, nil
	}

	result := ResultUpdated
	if published != nil && apiequality.Semantic.DeepEqual(published.Spec, desired.Spec) && sameSummary(published.Status, desired.Status) {
		if age := now.Sub(published.Status.LastChecked.Time); age >= 0 && age < p.refreshInterval() {
			return ResultUnchanged, nil
		}
		result = ResultRefreshed
	}
	if err := p.update(ctx, current, desired); err != nil {
		return ResultSkipped, err
	}
	return result, nil
}

// fieldManager names the agent in the objects' managedFields.
const fieldManager = "tessera-agent"

// update writes desired's spec and status into current, keeping current's
// metadata (labels, annotations, resourceVersion for optimistic
// concurrency). A conflict is returned and retried at the next interval.
func (p *Publisher) update(ctx context.Context, current *unstructured.Unstructured, desired *tesserav1alpha1.NodeGPUTopology) error {
	u, err := ToUnstructured(desired)
	if err != nil {
		return err
	}
	obj := current.DeepCopy()
	obj.Object["spec"] = u.Object["spec"]
	obj.Object["status"] = u.Object["status"]
	if _, err := p.client().Update(ctx, obj, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("updating NodeGPUTopology %s: %w", p.NodeName, err)
	}
	return nil
}

// sameSummary compares the parts of the status that are not a timestamp.
func sameSummary(a, b tesserav1alpha1.NodeGPUTopologyStatus) bool {
	a.LastChecked, b.LastChecked = metav1.Time{}, metav1.Time{}
	return a == b
}

func (p *Publisher) client() dynamic.ResourceInterface {
	return p.Client.Resource(tesserav1alpha1.NodeGPUTopologyResource)
}

func (p *Publisher) now() time.Time {
	if p.Clock == nil {
		return time.Now()
	}
	return p.Clock.Now()
}

func (p *Publisher) refreshInterval() time.Duration {
	if p.RefreshInterval > 0 {
		return p.RefreshInterval
	}
	return DefaultRefreshInterval
}
