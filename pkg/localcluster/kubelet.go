package localcluster

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// SimulateKubelets stands in for the kubelets of simulated nodes: every pod
// that is bound to a node and still Pending is reported Running and Ready,
// as a kubelet would after starting its containers, and every bound pod
// being deleted (preempted, for example) is removed at once, as a kubelet
// does once its containers have stopped; without that, a deleted bound pod
// would stay Terminating forever. Nothing is run. It returns when ctx ends.
func SimulateKubelets(ctx context.Context, client kubernetes.Interface) {
	factory := informers.NewSharedInformerFactory(client, 0)
	podInformer := factory.Core().V1().Pods().Informer()
	start := func(obj any) {
		pod, ok := obj.(*v1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return
		}
		if pod.DeletionTimestamp != nil {
			zero := int64(0)
			err := client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
				GracePeriodSeconds: &zero,
				Preconditions:      &metav1.Preconditions{UID: &pod.UID},
			})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
				klog.FromContext(ctx).V(2).Info("simulated kubelet could not remove terminating pod", "pod", klog.KObj(pod), "err", err)
			}
			return
		}
		if pod.Status.Phase != v1.PodPending {
			return
		}
		now := metav1.NewTime(time.Now())
		p := pod.DeepCopy()
		p.Status.Phase = v1.PodRunning
		p.Status.StartTime = &now
		p.Status.Conditions = append(p.Status.Conditions,
			v1.PodCondition{Type: v1.PodInitialized, Status: v1.ConditionTrue, LastTransitionTime: now},
			v1.PodCondition{Type: v1.ContainersReady, Status: v1.ConditionTrue, LastTransitionTime: now},
			v1.PodCondition{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: now},
		)
		if _, err := client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
			klog.FromContext(ctx).V(2).Info("simulated kubelet could not start pod", "pod", klog.KObj(p), "err", err)
		}
	}
	_, _ = podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    start,
		UpdateFunc: func(_, obj any) { start(obj) },
	})
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}
