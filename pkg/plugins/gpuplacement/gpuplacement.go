// Package gpuplacement is the GPUPlacement scheduler plugin: it chooses the
// node and the exact devices (whole GPUs, a MIG slot, or a share of one GPU)
// for pods that ask for GPUs, keeping multi-GPU pods inside one interconnect
// domain and the cluster unfragmented.
//
// This package is the framework adapter; the GPU model, allocation and
// fragmentation scoring live in pkg/gpu.
package gpuplacement

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
)

// Name is the plugin's name in the registry and in scheduler configurations.
const Name = "GPUPlacement"

// GPUPlacement places GPU pods at device level.
type GPUPlacement struct {
	handle fwk.Handle
	args   *Args
}

var _ fwk.PreFilterPlugin = &GPUPlacement{}

// New builds the plugin from validated args; invalid args fail scheduler
// start-up with an error naming the field.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := DecodeArgs(obj)
	if err != nil {
		return nil, err
	}
	return &GPUPlacement{handle: h, args: args}, nil
}

// Name returns the plugin name.
func (pl *GPUPlacement) Name() string { return Name }

// PreFilter skips every pod until device-level placement lands.
func (pl *GPUPlacement) PreFilter(_ context.Context, _ fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	return nil, fwk.NewStatus(fwk.Skip)
}

// PreFilterExtensions returns nil.
func (pl *GPUPlacement) PreFilterExtensions() fwk.PreFilterExtensions { return nil }
