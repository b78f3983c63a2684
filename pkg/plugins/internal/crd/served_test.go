package crd

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// TestWhenServedStartsOnceInstalled: a CRD installed after the scheduler
// started is picked up without a restart, start runs exactly once, and
// nothing runs after ctx ends.
func TestWhenServedStartsOnceInstalled(t *testing.T) {
	var installed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/example.com/v1" || !installed.Load() {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(&metav1.APIResourceList{
			TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
			GroupVersion: "example.com/v1",
			APIResources: []metav1.APIResource{{Name: "widgets", Kind: "Widget", Namespaced: true}},
		})
	}))
	defer srv.Close()
	old := PollInterval
	PollInterval = 20 * time.Millisecond
	defer func() { PollInterval = old }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var started atomic.Int32
	WhenServed(ctx, &rest.Config{Host: srv.URL}, schema.GroupVersion{Group: "example.com", Version: "v1"}, "widgets", "Widget", func(context.Context) {
		started.Add(1)
	})
	time.Sleep(100 * time.Millisecond)
	if n := started.Load(); n != 0 {
		t.Fatalf("started %d times before the CRD was installed", n)
	}
	installed.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for started.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := started.Load(); n != 1 {
		t.Fatalf("started %d times after the CRD was installed, want 1", n)
	}

	// Already served: start runs synchronously, before WhenServed returns.
	var sync atomic.Int32
	WhenServed(ctx, &rest.Config{Host: srv.URL}, schema.GroupVersion{Group: "example.com", Version: "v1"}, "widgets", "Widget", func(context.Context) {
		sync.Add(1)
	})
	if sync.Load() != 1 {
		t.Fatal("start did not run synchronously for a served resource")
	}
}
