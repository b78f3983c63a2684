package gang

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/tessera-sched/tessera/pkg/plugins/internal/pluginargs"
)

// Args configures Gang through the scheduler configuration.
type Args struct {
	// DefaultScheduleTimeoutSeconds bounds how long the members of a group
	// that sets no scheduleTimeoutSeconds may hold reservations while waiting
	// for the rest. Short, because a waiting member holds devices others
	// could use. Default 30; 1-86400.
	DefaultScheduleTimeoutSeconds *int32 `json:"defaultScheduleTimeoutSeconds,omitempty"`
	// BackoffInitialSeconds and BackoffMaxSeconds bound the exponential
	// back-off of a group that failed to assemble: doubling from the initial
	// value up to the cap, so a hopeless group does not storm the queue.
	// Defaults 1 and 60. Both 0 turn the group back-off off, as
	// scheduler-plugins' default podGroupBackoffSeconds: 0 does: a failed
	// group retries as soon as the scheduler's per-pod back-off lets its
	// members back.
	BackoffInitialSeconds *int32 `json:"backoffInitialSeconds,omitempty"`
	BackoffMaxSeconds     *int32 `json:"backoffMaxSeconds,omitempty"`
	// StarvationAfterSeconds is how long a group may wait for room before
	// younger and lower-priority groups stop starting, so that a big group
	// is not starved by a stream of small ones: the room running work gives
	// back then accumulates until it fits. Default 60; 1-86400.
	StarvationAfterSeconds *int32 `json:"starvationAfterSeconds,omitempty"`
}

// SetDefaults fills unset fields with their documented defaults.
func SetDefaults(a *Args) {
	def := func(p **int32, v int32) {
		if *p == nil {
			*p = &v
		}
	}
	def(&a.DefaultScheduleTimeoutSeconds, 30)
	def(&a.BackoffInitialSeconds, 1)
	def(&a.BackoffMaxSeconds, 60)
	def(&a.StarvationAfterSeconds, 60)
}

// Validate reports problems naming the field path and value.
func Validate(a *Args) error {
	p := pluginargs.Path(Name)
	var errs field.ErrorList
	if v := *a.DefaultScheduleTimeoutSeconds; v < 1 || v > 86400 {
		errs = append(errs, field.Invalid(p.Child("defaultScheduleTimeoutSeconds"), v, "must be between 1 and 86400"))
	}
	if v := *a.BackoffInitialSeconds; v < 0 || v > 3600 {
		errs = append(errs, field.Invalid(p.Child("backoffInitialSeconds"), v, "must be between 0 (no back-off, with backoffMaxSeconds 0) and 3600"))
	}
	if *a.BackoffInitialSeconds == 0 && *a.BackoffMaxSeconds != 0 {
		errs = append(errs, field.Invalid(p.Child("backoffMaxSeconds"), *a.BackoffMaxSeconds, "must be 0 when backoffInitialSeconds is 0 (no back-off)"))
	} else if v := *a.BackoffMaxSeconds; v < *a.BackoffInitialSeconds || v > 3600 {
		errs = append(errs, field.Invalid(p.Child("backoffMaxSeconds"), v,
			fmt.Sprintf("must be between backoffInitialSeconds (%d) and 3600", *a.BackoffInitialSeconds)))
	}
	if v := *a.StarvationAfterSeconds; v < 1 || v > 86400 {
		errs = append(errs, field.Invalid(p.Child("starvationAfterSeconds"), v, "must be between 1 and 86400"))
	}
	return errs.ToAggregate()
}

// DecodeArgs decodes, defaults and validates the plugin's args.
func DecodeArgs(obj runtime.Object) (*Args, error) {
	return pluginargs.DecodeArgs(Name, obj, SetDefaults, Validate)
}
