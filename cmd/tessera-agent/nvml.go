package main

import (
	"context"
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
)

// Backoff of --wait-for-driver: the first retry after driverRetryMin, then
// doubling up to driverRetryMax. A driver installed by the GPU Operator
// takes minutes, so polling faster gains nothing.
var (
	driverRetryMin = 5 * time.Second
	driverRetryMax = 5 * time.Minute
)

// initNVML initialises lib. Without wait it returns the first failure,
// explained for people; with wait it logs the failure and retries with
// backoff until NVML loads or ctx ends.
func initNVML(ctx context.Context, logger klog.Logger, lib nvml.Interface, wait bool) error {
	delay := driverRetryMin
	for {
		ret := lib.Init()
		if ret == nvml.SUCCESS {
			return nil
		}
		err := nvmlLoadError(ret)
		if !wait {
			return err
		}
		logger.Info("Waiting for the NVIDIA driver", "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for the NVIDIA driver: %w", err)
		case <-time.After(delay):
		}
		delay = min(delay*2, driverRetryMax)
	}
}

// nvmlLoadError explains why nvml.Init failed in words a person at a node
// can act on.
func nvmlLoadError(ret nvml.Return) error {
	reason, hint := "nvmlInit failed", ""
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		reason = "libnvidia-ml.so.1 was not found"
		hint = " In a pod, the NVIDIA container runtime provides it: check the pod's runtimeClassName and NVIDIA_DRIVER_CAPABILITIES=utility."
	case nvml.ERROR_DRIVER_NOT_LOADED:
		reason = "the NVIDIA kernel driver is not loaded"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		reason = "libnvidia-ml.so does not match the loaded kernel driver"
		hint = " Was the driver upgraded without a reboot?"
	case nvml.ERROR_NO_PERMISSION:
		reason = "no permission to open the NVIDIA device files"
	}
	return fmt.Errorf("NVML could not be loaded: %s [%v]. Is the NVIDIA driver installed and is this a GPU node?%s", reason, ret, hint)
}
