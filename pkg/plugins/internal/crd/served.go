package crd

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
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

// Factory is what RunInformer needs of an informer factory (typed or
// dynamic).
type Factory interface {
	Start(stopCh <-chan struct{})
	Shutdown()
}

// RunInformer starts factory until ctx ends (then shuts it down, so no
// goroutine outlives the scheduler) and waits up to 30s for informer's
// first list, logging when it does not come: the plugin then works from a
// partial view that fills in as the informer catches up.
func RunInformer(ctx context.Context, factory Factory, informer cache.SharedIndexInformer, what string) {
	factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		factory.Shutdown()
	}()
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), informer.HasSynced) {
		klog.FromContext(ctx).Error(nil, "Informer did not sync in 30s", "resource", what)
	}
}
