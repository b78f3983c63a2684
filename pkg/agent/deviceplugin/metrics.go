package deviceplugin

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// The agent's device metrics, served by tessera-agent on
// --metrics-bind-address. A cluster admin alerts on mismatches (the node
// did otherwise than the scheduler chose) and refusals (pods that failed
// admission because the assignment could not be honoured).
var (
	mismatches = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      "tessera",
		Name:           "device_assignment_mismatch_total",
		Help:           "Pods found (through the kubelet's PodResources) holding other devices than their tessera.dev/gpu-assignment, by resource; the scheduler then accounts the devices they hold.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"resource"})
	allocations = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      "tessera",
		Name:           "device_allocations_total",
		Help:           "Containers the agent's device plugins were asked to allocate for, by resource and result: allocated (the assigned devices, or a foreign pod's free ones) or refused (the container fails admission with the reason).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"resource", "result"})
	migOperations = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      "tessera",
		Name:           "mig_instance_operations_total",
		Help:           "MIG instances the agent created (as pods placed on MIG-dynamic GPUs were admitted) and destroyed (unheld), by operation and result.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"operation", "result"})
	registerOnce sync.Once
)

// RegisterMetrics registers the device metrics with the legacy registry,
// once.
func RegisterMetrics() {
	registerOnce.Do(func() { legacyregistry.MustRegister(mismatches, allocations, migOperations) })
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
