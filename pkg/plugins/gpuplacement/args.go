package gpuplacement

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/tessera-sched/tessera/pkg/plugins/internal/pluginargs"
)

// ScoringStrategy names how GPUPlacement ranks the nodes that can host a pod.
type ScoringStrategy string

const (
	// FragmentationAware prefers the node and devices whose use increases the
	// expected unusable GPU capacity the least, given the demand mix learned
	// from recent pods (after FGD, USENIX ATC'23). It keeps large requests
	// placeable for longer than packing or spreading does.
	FragmentationAware ScoringStrategy = "FragmentationAware"
	// BinPack prefers the node with the least free GPU capacity that still
	// fits: simple and predictable, but blind to the shape of what is left.
	BinPack ScoringStrategy = "BinPack"
	// Spread prefers the node with the most free GPU capacity, trading
	// packing for headroom per node (e.g. bursty share workloads).
	Spread ScoringStrategy = "Spread"
)

// Args configures GPUPlacement through the scheduler configuration's
// pluginConfig. Every field is optional; SetDefaults fills the documented
// defaults so that an empty pluginConfig means "the recommended behaviour".
type Args struct {
	// ScoringStrategy is one of FragmentationAware (default), BinPack, Spread.
	ScoringStrategy ScoringStrategy `json:"scoringStrategy,omitempty"`
	// TopologyWeight is the share (0-100) of a node's score given to the
	// interconnect locality of a multi-GPU pod's devices (same NVLink/NVSwitch
	// domain beats same NUMA node beats scattered). Default 20: locality
	// decides between nodes that are about as good for fragmentation; raise
	// it to trade cluster packing for multi-GPU performance. Pods that must
	// have locality ask for it with tessera.dev/gpu-topology: required.
	TopologyWeight *int32 `json:"topologyWeight,omitempty"`
	// DemandHalfLife is the number of observed GPU pods after which an
	// observation weighs half in the learned demand mix used by
	// FragmentationAware scoring. Small values follow workload shifts quickly;
	// large values are steadier. Default 1000; 1-1000000.
	DemandHalfLife *int32 `json:"demandHalfLife,omitempty"`
}

const (
	defaultTopologyWeight = 20
	defaultDemandHalfLife = 1000
)

// SetDefaults fills unset fields with their documented defaults.
func SetDefaults(a *Args) {
	if a.ScoringStrategy == "" {
		a.ScoringStrategy = FragmentationAware
	}
	if a.TopologyWeight == nil {
		w := int32(defaultTopologyWeight)
		a.TopologyWeight = &w
	}
	if a.DemandHalfLife == nil {
		h := int32(defaultDemandHalfLife)
		a.DemandHalfLife = &h
	}
}

// Validate returns every problem with a defaulted Args, each naming the
// field path in the scheduler configuration and the offending value.
func Validate(a *Args) error {
	p := pluginargs.Path(Name)
	var errs field.ErrorList
	switch a.ScoringStrategy {
	case FragmentationAware, BinPack, Spread:
	default:
		errs = append(errs, field.NotSupported(p.Child("scoringStrategy"), a.ScoringStrategy,
			[]ScoringStrategy{FragmentationAware, BinPack, Spread}))
	}
	if w := *a.TopologyWeight; w < 0 || w > 100 {
		errs = append(errs, field.Invalid(p.Child("topologyWeight"), w, "must be between 0 and 100"))
	}
	if h := *a.DemandHalfLife; h < 1 || h > 1000000 {
		errs = append(errs, field.Invalid(p.Child("demandHalfLife"), h, "must be between 1 and 1000000"))
	}
	return errs.ToAggregate()
}

// DecodeArgs decodes, defaults and validates the plugin's args.
func DecodeArgs(obj runtime.Object) (*Args, error) {
	return pluginargs.DecodeArgs(Name, obj, SetDefaults, Validate)
}
