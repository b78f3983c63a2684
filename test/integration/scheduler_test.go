package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// schedulerServiceAccount is the identity the shipped Deployment runs as.
var schedulerServiceAccount = rest.ImpersonationConfig{
	UserName: "system:serviceaccount:tessera-system:tessera-scheduler",
	Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:tessera-system", "system:authenticated"},
}

// TestSecondarySchedulerWithShippedRBAC runs the shipped secondary-scheduler
// configuration under the shipped ServiceAccount and ClusterRole (RBAC is
// enforced by the API server): a pod that names tessera-scheduler is bound,
// a pod for another scheduler is left alone.
func TestSecondarySchedulerWithShippedRBAC(t *testing.T) {
	applyObjects(t, kustomizeBuild(t, "base"), false)
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = schedulerServiceAccount
	startScheduler(t, cfg, readManifest(t, "base/scheduler-config.yaml"))

	ns := newNamespace(t)
	createNodes(t, nodeSpec{name: "secondary-node-1", cpu: "16", memory: "64Gi", gpus: 8})

	createPod(t, ns, podSpec{name: "mine", schedulerName: "tessera-scheduler"})
	bound := waitBound(t, ns, "mine", 60*time.Second)
	if bound.Spec.NodeName != "secondary-node-1" {
		t.Fatalf("bound to %q, want secondary-node-1", bound.Spec.NodeName)
	}

	createPod(t, ns, podSpec{name: "theirs", schedulerName: "some-other-scheduler"})
	// A pod created after "theirs" being bound proves the scheduler has seen
	// and processed the events that came before it.
	createPod(t, ns, podSpec{name: "mine-later", schedulerName: "tessera-scheduler"})
	waitBound(t, ns, "mine-later", 30*time.Second)
	time.Sleep(time.Second)

	theirs, err := cp.Client.CoreV1().Pods(ns).Get(context.Background(), "theirs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if theirs.Spec.NodeName != "" {
		t.Errorf("pod for another scheduler was bound to %q", theirs.Spec.NodeName)
	}
	for _, c := range theirs.Status.Conditions {
		if c.Type == v1.PodScheduled {
			t.Errorf("pod for another scheduler got a PodScheduled condition: %+v", c)
		}
	}
}

// TestReplacementDefaultScheduler runs the shipped replacement-default
// configuration: a pod that names no scheduler is bound by Tessera.
func TestReplacementDefaultScheduler(t *testing.T) {
	startScheduler(t, cp.Config, readManifest(t, "default-scheduler/scheduler-config.yaml"))
	ns := newNamespace(t)
	createNodes(t, nodeSpec{name: "default-node-1", cpu: "16", memory: "64Gi"})
	pod := createPod(t, ns, podSpec{name: "plain"})
	if pod.Spec.SchedulerName != v1.DefaultSchedulerName {
		t.Fatalf("API server defaulted schedulerName to %q", pod.Spec.SchedulerName)
	}
	bound := waitBound(t, ns, "plain", 60*time.Second)
	if bound.Spec.NodeName != "default-node-1" {
		t.Fatalf("bound to %q, want default-node-1", bound.Spec.NodeName)
	}
}

// TestInvalidPluginArgsFailStartup checks that a bad Tessera plugin arg stops
// the scheduler from starting, with an error naming the field and value.
func TestInvalidPluginArgsFailStartup(t *testing.T) {
	base := string(readManifest(t, "base/scheduler-config.yaml"))
	tests := []struct {
		name    string
		from    string
		to      string
		wantErr []string
	}{
		{
			name:    "unsupported scoring strategy",
			from:    "scoringStrategy: FragmentationAware",
			to:      "scoringStrategy: MostRandom",
			wantErr: []string{"pluginConfig[GPUPlacement].args.scoringStrategy", `"MostRandom"`},
		},
		{
			name:    "misspelt field",
			from:    "namespacesWithoutQuota: Ungoverned",
			to:      "namespacesWithoutQuotas: Ungoverned",
			wantErr: []string{"pluginConfig[ElasticQuota].args", `unknown field "namespacesWithoutQuotas"`},
		},
		{
			name:    "gang backoff cap below initial",
			from:    "backoffMaxSeconds: 60",
			to:      "backoffMaxSeconds: 0",
			wantErr: []string{"pluginConfig[Gang].args.backoffMaxSeconds", "0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.from) {
				t.Fatalf("shipped config no longer contains %q", tc.from)
			}
			config := strings.Replace(base, tc.from, tc.to, 1)
			dir := t.TempDir()
			s, err := localcluster.StartScheduler(context.Background(), cp.Kubeconfig, []byte(config), dir)
			if err == nil {
				s.Stop()
				t.Fatal("scheduler started with an invalid configuration")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
