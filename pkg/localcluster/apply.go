package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// DecodeYAML splits a multi-document YAML (or JSON) stream into objects,
// skipping empty documents.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("document %d: apiVersion and kind are required", len(objs)+1)
		}
		objs = append(objs, u)
	}
}

// Apply server-side applies objs the way `kubectl apply --server-side`
// would: Namespaces and CustomResourceDefinitions first and for real (waiting
// until each CRD is established, so custom objects after it can be created),
// then everything else in order, as a server-side dry run if dryRun is set.
// A Node's status (capacity, conditions) is applied too, since simulated
// nodes have no kubelet to report it. Every rejection is returned.
func Apply(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured, dryRun bool) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))

	apply := func(obj *unstructured.Unstructured, dry bool) error {
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			mapper.Reset()
			if mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				return fmt.Errorf("%s %q: %w", gvk.Kind, obj.GetName(), err)
			}
		}
		opts := metav1.ApplyOptions{FieldManager: "tessera", Force: true}
		if dry {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == "namespace" {
			ns := obj.GetNamespace()
			if ns == "" {
				ns = metav1.NamespaceDefault
			}
			ri = dyn.Resource(mapping.Resource).Namespace(ns)
		}
		_, err = ri.Apply(ctx, obj.GetName(), obj, opts)
		// The Priority admission plugin reads PriorityClasses from an
		// informer: a pod naming a class created a moment before can be
		// refused until the class reaches it. Only that refusal is retried.
		for deadline := time.Now().Add(10 * time.Second); err != nil && isNewPriorityClass(err) && time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			_, err = ri.Apply(ctx, obj.GetName(), obj, opts)
		}
		if err != nil {
			return fmt.Errorf("%s %s/%s rejected: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
		if _, hasStatus := obj.Object["status"]; hasStatus && gvk.Kind == "Node" {
			if _, err := ri.ApplyStatus(ctx, obj.GetName(), obj, opts); err != nil {
				return fmt.Errorf("Node %s status rejected: %w", obj.GetName(), err)
			}
		}
		return nil
	}

	var rest []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition":
			if err := apply(o, false); err != nil {
				return err
			}
			if o.GetKind() == "CustomResourceDefinition" {
				if err := waitEstablished(ctx, dyn, o.GetName()); err != nil {
					return err
				}
				mapper.Reset()
			}
		default:
			rest = append(rest, o)
		}
	}
	var errs []error
	for _, o := range rest {
		if err := apply(o, dryRun); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	gvr := apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		u, err := dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &crd); err != nil {
			return false, err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CustomResourceDefinition %s not established: %w", name, err)
	}
	return nil
}

// isNewPriorityClass reports the Priority admission plugin's refusal of a
// pod whose PriorityClass it has not seen yet.
func isNewPriorityClass(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "no PriorityClass with name")
}
