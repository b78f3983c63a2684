package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// TestLeaderElectionThatCannotSucceedFailsLoudly: a scheduler whose lease
// namespace does not exist, or whose identity RBAC denies the lease, exits
// at start-up naming the namespace or the permission, instead of retrying
// silently while no pod is scheduled (against a real API server with RBAC).
func TestLeaderElectionThatCannotSucceedFailsLoudly(t *testing.T) {
	dir := t.TempDir()
	cp, err := localcluster.StartProgram(localcluster.Options{Dir: filepath.Join(dir, "cp")})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	ctx := context.Background()
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "le-test"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client.CoreV1().ServiceAccounts("le-test").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := cp.Client.CoreV1().ServiceAccounts("le-test").CreateToken(ctx, "nobody", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nobody := rest.AnonymousClientConfig(cp.Config)
	nobody.BearerToken = tok.Status.Token
	nobodyKubeconfig := filepath.Join(dir, "nobody.kubeconfig")
	if err := localcluster.WriteKubeconfig(nobody, nobodyKubeconfig); err != nil {
		t.Fatal(err)
	}
	config := func(name, kubeconfig, namespace string) string {
		path := filepath.Join(dir, name+".yaml")
		writeFile(t, path, "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: "+kubeconfig+
			"\nleaderElection:\n  leaderElect: true\n  resourceName: tessera-scheduler\n  resourceNamespace: "+namespace+"\nprofiles:\n  - schedulerName: tessera-scheduler\n")
		return path
	}
	tests := []struct {
		name   string
		config string
		want   string
	}{
		{name: "namespace missing", config: config("missing", cp.Kubeconfig, "tessera-system"), want: `tessera-system/tessera-scheduler cannot be taken because namespace \"tessera-system\" does not exist`},
		{name: "lease denied by RBAC", config: config("denied", nobodyKubeconfig, "le-test"), want: "may not get the lease le-test/tessera-scheduler"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runMain(t, "--config="+tc.config, "--secure-port=0")
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d; want a failure saying %q:\n%s", code, tc.want, out)
			}
		})
	}
	_ = os.Remove(nobodyKubeconfig)
}
