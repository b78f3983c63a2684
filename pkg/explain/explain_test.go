package explain

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestReadOnly: through ReadOnly's config reads reach the server, and
// nothing else leaves the process.
func TestReadOnly(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"ns"}}`))
	}))
	defer srv.Close()
	client, err := kubernetes.NewForConfig(ReadOnly(&rest.Config{Host: srv.URL}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{}); err != nil {
		t.Fatalf("a read failed: %v", err)
	}
	writes := []func() error{
		func() error {
			_, err := client.CoreV1().Pods("ns").Create(ctx, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, metav1.CreateOptions{})
			return err
		},
		func() error { return client.CoreV1().Pods("ns").Delete(ctx, "p", metav1.DeleteOptions{}) },
		func() error {
			_, err := client.CoreV1().Pods("ns").UpdateStatus(ctx, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, metav1.UpdateOptions{})
			return err
		},
	}
	for i, w := range writes {
		if err := w(); err == nil || !strings.Contains(err.Error(), "only reads") {
			t.Errorf("write %d: error %v, want one saying explain only reads", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != http.MethodGet {
		t.Errorf("the server saw %v, want only the GET", seen)
	}
}
