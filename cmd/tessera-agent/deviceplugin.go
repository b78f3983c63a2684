package main

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tessera-sched/tessera/pkg/agent/deviceplugin"
	tesserav1alpha1 "github.com/tessera-sched/tessera/pkg/apis/tessera/v1alpha1"
)

// startDevicePlugin starts the device plugins for the discovered GPUs
// (whole GPUs and their shares; MIG instances of each profile, created
// through layout on MIG-dynamic GPUs, which changed is poked after): an
// informer on the pods bound to this node (their assignments), an Event
// recorder, the plugins' servers, the PodResources reconciler and the
// cleaner of unused MIG instances, until ctx ends.
func startDevicePlugin(ctx context.Context, o *options, client kubernetes.Interface, spec tesserav1alpha1.NodeGPUTopologySpec, layout deviceplugin.MIGLayout, changed chan<- struct{}) error {
	logger := klog.FromContext(ctx).WithName("device-plugin")
	var devices []deviceplugin.Device
	var migGPUs []deviceplugin.MIGGPU
	for _, g := range spec.GPUs {
		if g.UUID == "" {
			return fmt.Errorf("--device-plugin: GPU %d has no UUID", g.Index)
		}
		if g.MIG != nil && g.MIG.Mode != tesserav1alpha1.MIGDisabled {
			// A MIG GPU is served as its MIG instances, never whole.
			migGPUs = append(migGPUs, deviceplugin.MIGGPU{
				Index: int(g.Index), UUID: g.UUID, Product: g.Product,
				Dynamic: g.MIG.Mode == tesserav1alpha1.MIGDynamic, Instances: g.MIG.Instances,
			})
			continue
		}
		devices = append(devices, deviceplugin.Device{Index: int(g.Index), UUID: g.UUID})
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", o.nodeName).String()
	}))
	pods := factory.Core().V1().Pods()
	_ = pods.Informer()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), pods.Informer().HasSynced) {
		return fmt.Errorf("--device-plugin: the pods of node %s did not sync", o.nodeName)
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "tessera-agent", Host: o.nodeName})
	podsOfNode := func() []*v1.Pod {
		list, _ := pods.Lister().List(labels.Everything())
		return list
	}
	allocated := make(chan struct{}, 1)
	p := &deviceplugin.Plugin{
		Devices:   devices,
		Pods:      podsOfNode,
		Dir:       o.devicePluginDir,
		Events:    recorder,
		Allocated: allocated,
		CDI:       o.deviceListStrategy == "cdi-cri",
		Logger:    logger,
	}
	r := &deviceplugin.Reconciler{
		Client:  client,
		Devices: devices,
		Pods:    podsOfNode,
		Socket:  o.podResourcesSocket,
		Events:  recorder,
		Logger:  logger.WithName("reconcile"),
	}
	shares := &deviceplugin.SharePlugin{
		Devices:   devices,
		Pods:      podsOfNode,
		Admitting: deviceplugin.Admitting(o.podResourcesSocket),
		Dir:       o.devicePluginDir,
		Events:    recorder,
		Allocated: allocated,
		CDI:       o.deviceListStrategy == "cdi-cri",
		Logger:    logger.WithName("shares"),
	}
	go r.Run(ctx, allocated)
	go func() { _ = shares.Run(ctx) }()
	for _, mp := range deviceplugin.MIGPlugins(migGPUs, layout, changed) {
		mp.Pods, mp.Dir, mp.Events, mp.Allocated = podsOfNode, o.devicePluginDir, recorder, allocated
		mp.CDI = o.deviceListStrategy == "cdi-cri"
		mp.Logger = logger.WithName("mig")
		go func() { _ = mp.Run(ctx) }()
	}
	if len(migGPUs) > 0 {
		cleaner := &deviceplugin.MIGCleaner{GPUs: migGPUs, Layout: layout, Pods: podsOfNode, Destroyed: changed, Logger: logger.WithName("mig")}
		go cleaner.Run(ctx.Done())
	}
	go func() {
		_ = p.Run(ctx)
		broadcaster.Shutdown()
	}()
	return nil
}
