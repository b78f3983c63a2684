// Package gang is the Gang scheduler plugin: pod-group co-scheduling that is
// all-or-nothing, bounded in time and free of deadlocks between groups.
//
// This package is the framework adapter; group state and decisions live in
// pkg/gang so that they are tested without a scheduler.
package gang

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// Name is the plugin's name in the registry and in scheduler configurations.
const Name = "Gang"

// PodGroupLabel is the label by which a pod joins a scheduler-plugins
// PodGroup in its namespace; manifests written for scheduler-plugins work
// unchanged.
const PodGroupLabel = schedv1alpha1.PodGroupLabel

// Gang holds group members back until the whole group can be placed.
type Gang struct {
	handle fwk.Handle
	args   *Args
}

var _ fwk.PreEnqueuePlugin = &Gang{}

// New builds the plugin from validated args; invalid args fail scheduler
// start-up with an error naming the field.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := DecodeArgs(obj)
	if err != nil {
		return nil, err
	}
	return &Gang{handle: h, args: args}, nil
}

// Name returns the plugin name.
func (pl *Gang) Name() string { return Name }

// PreEnqueue admits every pod for now: group semantics are not implemented
// yet (see the Gang issue), so a pod that names a group is scheduled as a
// plain pod.
func (pl *Gang) PreEnqueue(_ context.Context, _ *v1.Pod) *fwk.Status {
	return nil
}
