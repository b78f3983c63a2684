package elasticquota

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/tessera-sched/tessera/pkg/plugins/internal/pluginargs"
)

// NamespacePolicy says what happens to pods of a namespace that has no
// ElasticQuota.
type NamespacePolicy string

const (
	// Ungoverned (default) schedules such pods without any quota check, the
	// way a cluster without quotas behaves: adopting Tessera changes nothing
	// for namespaces nobody has given a quota yet.
	Ungoverned NamespacePolicy = "Ungoverned"
	// Deny keeps such pods Pending with a reason naming the missing quota,
	// for clusters where every GPU must be accounted to a team.
	Deny NamespacePolicy = "Deny"
)

// BorrowingLimit says what a namespace above its min may borrow.
type BorrowingLimit string

const (
	// UnusedMinAndUnguaranteed (default) lends other namespaces' unused min
	// and the cluster capacity no quota guarantees (capacity beyond the sum
	// of all mins), so that idle GPUs nobody is guaranteed are used.
	UnusedMinAndUnguaranteed BorrowingLimit = "UnusedMinAndUnguaranteed"
	// UnusedMin lends only other namespaces' unused min: the governed
	// namespaces together never use more than the sum of their mins, as in
	// scheduler-plugins' CapacityScheduling. Capacity beyond that stays
	// free for pods of namespaces without a quota.
	UnusedMin BorrowingLimit = "UnusedMin"
)

// Args configures ElasticQuota through the scheduler configuration.
type Args struct {
	// NamespacesWithoutQuota is Ungoverned (default) or Deny.
	NamespacesWithoutQuota NamespacePolicy `json:"namespacesWithoutQuota,omitempty"`
	// BorrowingLimit is UnusedMinAndUnguaranteed (default) or UnusedMin.
	BorrowingLimit BorrowingLimit `json:"borrowingLimit,omitempty"`
}

// SetDefaults fills unset fields with their documented defaults.
func SetDefaults(a *Args) {
	if a.NamespacesWithoutQuota == "" {
		a.NamespacesWithoutQuota = Ungoverned
	}
	if a.BorrowingLimit == "" {
		a.BorrowingLimit = UnusedMinAndUnguaranteed
	}
}

// Validate reports problems naming the field path and value.
func Validate(a *Args) error {
	var errs field.ErrorList
	switch a.NamespacesWithoutQuota {
	case Ungoverned, Deny:
	default:
		errs = append(errs, field.NotSupported(pluginargs.Path(Name).Child("namespacesWithoutQuota"),
			a.NamespacesWithoutQuota, []NamespacePolicy{Ungoverned, Deny}))
	}
	switch a.BorrowingLimit {
	case UnusedMinAndUnguaranteed, UnusedMin:
	default:
		errs = append(errs, field.NotSupported(pluginargs.Path(Name).Child("borrowingLimit"),
			a.BorrowingLimit, []BorrowingLimit{UnusedMinAndUnguaranteed, UnusedMin}))
	}
	return errs.ToAggregate()
}

// DecodeArgs decodes, defaults and validates the plugin's args.
func DecodeArgs(obj runtime.Object) (*Args, error) {
	return pluginargs.DecodeArgs(Name, obj, SetDefaults, Validate)
}
