package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/agent"
	"github.com/tessera-sched/tessera/pkg/agent/deviceplugin"
	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// runPublish implements the default mode: keep the node's NodeGPUTopology
// current until the process is stopped (or once, with --once).
func runPublish(ctx context.Context, o *options, d deps) error {
	layout, err := o.validate()
	if err != nil {
		return err
	}
	logger := klog.FromContext(ctx)
	client, err := d.newClient(o.kubeconfig)
	if err != nil {
		return err
	}
	lib, err := openNVML(ctx, o, d)
	if err != nil {
		return err
	}
	defer shutdownNVML(ctx, lib)

	discoverOpts := agent.Options{
		MIGLayout: layout,
		HostFS:    os.DirFS(o.hostRoot),
		Logger:    logger,
	}
	p := &agent.Publisher{
		Client:       client,
		NodeName:     o.nodeName,
		AgentVersion: version.Get().GitVersion,
		Discover: func() (tesserav1alpha1.NodeGPUTopologySpec, agent.Info, error) {
			return agent.Discover(lib, discoverOpts)
		},
		Logger: logger,
	}
	if o.metricsAddr != "0" && !o.once {
		serveMetrics(ctx, o.metricsAddr)
	}
	if o.devicePlugin {
		if o.once {
			return fmt.Errorf("--device-plugin serves until stopped; it cannot be combined with --once")
		}
		spec, _, err := agent.Discover(lib, discoverOpts)
		if err != nil {
			return fmt.Errorf("--device-plugin: discovering the GPUs to serve: %w", err)
		}
		kube, err := d.newKubeClient(o.kubeconfig)
		if err != nil {
			return err
		}
		deviceplugin.RegisterMetrics()
		changed := make(chan struct{}, 1)
		p.Trigger = changed
		mig := &agent.MIGManager{Lib: lib, Logger: logger.WithName("mig")}
		if err := startDevicePlugin(ctx, o, kube, spec, mig, changed); err != nil {
			return err
		}
	}
	logger.Info("Publishing this node's GPU topology", "node", o.nodeName, "interval", o.interval, "migLayout", layout)
	if o.once {
		res, err := p.Sync(ctx)
		logger.Info("Published once", "node", o.nodeName, "result", res)
		return err
	}
	p.Run(ctx, o.interval)
	return nil
}

// serveMetrics serves Prometheus metrics on /metrics and liveness on
// /healthz at addr until ctx ends. A port already taken is logged, not
// fatal: metrics must not take GPU scheduling down.
func serveMetrics(ctx context.Context, addr string) {
	logger := klog.FromContext(ctx)
	mux := http.NewServeMux()
	mux.Handle("/metrics", legacyregistry.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Serving metrics failed", "address", addr)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	logger.Info("Serving metrics", "address", addr, "paths", "/metrics /healthz")
}
