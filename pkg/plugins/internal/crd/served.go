package crd

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// PollInterval is how often WhenServed looks for a CRD that is not
// installed yet.
var PollInterval = 5 * time.Second

// WhenServed calls start once the API server serves resource in gv: at
// once (and synchronously, so a scheduler that starts with the CRD in place
// has its informers synced before it schedules) when it is served already,
// otherwise from a goroutine that checks every PollInterval until it is or
// ctx ends. So installing a CRD after the scheduler does not need a
// restart. what names the resource in the log lines.
func WhenServed(ctx context.Context, cfg *rest.Config, gv schema.GroupVersion, resource, what string, start func(context.Context)) {
	logger := klog.FromContext(ctx)
	served, err := Served(cfg, gv, resource)
	if err != nil {
		logger.Error(err, "Cannot check whether the API server serves the resource; will retry", "resource", what)
	}
	if served {
		start(ctx)
		return
	}
	logger.Info("Resource is not served (CRD not installed); it is used as soon as it is", "resource", what)
	go func() {
		_ = wait.PollUntilContextCancel(ctx, PollInterval, false, func(ctx context.Context) (bool, error) {
			ok, err := Served(cfg, gv, resource)
			return err == nil && ok, nil
		})
		if ctx.Err() == nil {
			logger.Info("Resource is now served; watching it", "resource", what)
			start(ctx)
		}
	}()
}
