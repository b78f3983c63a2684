package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tests run this test binary again as the real command (main), so that
// flag parsing, config loading and exit codes are exactly the binary's.
func TestMain(m *testing.M) {
	if os.Getenv("TESSERA_SCHEDULER_RUN_MAIN") == "1" {
		os.Args = append([]string{"tessera-scheduler"}, strings.Fields(os.Getenv("TESSERA_SCHEDULER_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(t *testing.T, args ...string) (string, int) {
	t.Helper()
	// A scheduler that starts for real would run until stopped: every test
	// here expects it to exit, so one that does not within a minute fails.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "TESSERA_SCHEDULER_RUN_MAIN=1", "TESSERA_SCHEDULER_ARGS="+strings.Join(args, " "))
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestHelpShowsUpstreamFlags(t *testing.T) {
	out, code := runMain(t, "--help")
	if code != 0 {
		t.Fatalf("--help exited %d:\n%s", code, out)
	}
	for _, want := range []string{"tessera-scheduler", "--config", "--leader-elect", "--secure-port", "--feature-gates",
		"GPUPlacement", "ElasticQuota", "Gang", "topologyWeight", "manifests/base/scheduler-config.yaml", "README.md"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help output lacks %q", want)
		}
	}
}

func TestInvalidPluginArgExitsNonZero(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	// A syntactically valid kubeconfig; the scheduler must fail on its
	// configuration before it ever talks to this (unreachable) server.
	writeFile(t, kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`)
	config := filepath.Join(dir, "config.yaml")
	writeFile(t, config, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: `+kubeconfig+`
leaderElection:
  leaderElect: false
profiles:
  - schedulerName: tessera-scheduler
    plugins:
      multiPoint:
        enabled:
          - name: GPUPlacement
    pluginConfig:
      - name: GPUPlacement
        args:
          topologyWeight: 250
`)
	out, code := runMain(t, "--config="+config, "--secure-port=0")
	if code == 0 {
		t.Fatalf("scheduler accepted an invalid plugin arg:\n%s", out)
	}
	for _, want := range []string{"pluginConfig[GPUPlacement].args.topologyWeight", "250"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not name %q:\n%s", want, out)
		}
	}
	// Upstream logs this at error level on every start without a metric
	// label allow-list manifest; it is not an error.
	if strings.Contains(out, "The manifest file is empty") {
		t.Errorf("start-up logs upstream's spurious error:\n%s", out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKubeconfigBesideConfig: --kubeconfig is used when --config's file
// names no kubeconfig (upstream ignores it and exits with "no configuration
// has been provided"), and the file's own kubeconfig wins when it names
// one. A kubeconfig that cannot be read shows which one was used.
func TestKubeconfigBesideConfig(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken-kubeconfig")
	writeFile(t, broken, "this is not a kubeconfig: [")
	config := func(clientConnection string) string {
		path := filepath.Join(dir, "config-"+strings.ReplaceAll(clientConnection, "/", "_")+".yaml")
		cc := ""
		if clientConnection != "" {
			cc = "clientConnection:\n  kubeconfig: " + clientConnection + "\n"
		}
		writeFile(t, path, "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"+cc+"leaderElection:\n  leaderElect: false\n")
		return path
	}
	tests := []struct {
		name     string
		config   string
		wantUsed string
	}{
		{name: "no kubeconfig in the file: --kubeconfig's", config: config(""), wantUsed: broken},
		{name: "the file's kubeconfig wins", config: config(filepath.Join(dir, "missing")), wantUsed: filepath.Join(dir, "missing")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runMain(t, "--config="+tc.config, "--kubeconfig="+broken, "--secure-port=0")
			if code == 0 {
				t.Fatalf("started with an unreadable kubeconfig:\n%s", out)
			}
			if !strings.Contains(out, tc.wantUsed) || strings.Contains(out, "no configuration has been provided") {
				t.Errorf("output does not show the kubeconfig %s was used:\n%s", tc.wantUsed, out)
			}
		})
	}
}
