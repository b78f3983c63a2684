package main

import (
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// TestDaemonSetArgs checks that the shipped DaemonSet passes the agent only
// flags it has, so that a renamed flag cannot crash-loop every GPU node.
func TestDaemonSetArgs(t *testing.T) {
	raw, err := os.ReadFile("../../manifests/agent/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(raw, &ds); err != nil {
		t.Fatalf("daemonset.yaml: %v", err)
	}
	for _, c := range ds.Spec.Template.Spec.Containers {
		cmd := newCommand(defaultDeps())
		if err := cmd.ParseFlags(c.Args); err != nil {
			t.Errorf("container %s args %v: %v", c.Name, c.Args, err)
		}
		if len(cmd.Flags().Args()) != 0 {
			t.Errorf("container %s passes positional arguments %v", c.Name, cmd.Flags().Args())
		}
	}
}
