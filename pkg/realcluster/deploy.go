package realcluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tessera-sched/tessera/manifests/render"
	"github.com/tessera-sched/tessera/pkg/agent/deviceplugin"
	"github.com/tessera-sched/tessera/pkg/gpu"
	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// AgentImage is the name the cluster's callers give bin/tessera-agent's
// image.
const AgentImage = "tessera.local/tessera-agent:dev"

// Apply renders the embedded kustomization dir through overlay, as
// `kubectl apply -k` would, and applies it server-side.
func (c *Cluster) Apply(ctx context.Context, dir string, overlay render.Overlay) error {
	data, err := render.Kustomization(dir, overlay)
	if err != nil {
		return err
	}
	objs, err := localcluster.DecodeYAML(data)
	if err != nil {
		return err
	}
	if err := localcluster.Apply(ctx, c.Config, objs, false); err != nil {
		return fmt.Errorf("applying manifests/%s: %w", dir, err)
	}
	return nil
}

// DeploySimulatedAgent deploys manifests/agent-device-plugin the way a user
// replacing NVIDIA's device plugin does, changed only as a machine without
// GPUs needs: the agent's image is AgentImage and it runs with
// --simulate=system, and extraArgs (e.g. MIG-enabled simulated GPUs). First it creates the RuntimeClass nvidia that the GPU
// Operator would have (its handler is containerd's stand-in, see the node
// configuration). It waits until every node in gpuNodes advertises gpus
// nvidia.com/gpu (the GPUs without MIG), and their share slots, from the
// agent's device plugin.
func (c *Cluster) DeploySimulatedAgent(ctx context.Context, system string, gpuNodes []string, gpus int64, timeout time.Duration, extraArgs ...string) error {
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nvidia"}, Handler: "nvidia"}
	if _, err := c.Client.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	name, tag, _ := strings.Cut(AgentImage, ":")
	var patch strings.Builder
	for _, arg := range append([]string{"--simulate=" + system}, extraArgs...) {
		fmt.Fprintf(&patch, "- op: add\n  path: /spec/template/spec/containers/0/args/-\n  value: %q\n", arg)
	}
	err := c.Apply(ctx, "agent-device-plugin", render.Overlay{
		Images: []render.Image{{Name: "ghcr.io/tessera-sched/tessera-agent", NewName: name, NewTag: tag}},
		Patches: []render.Patch{{
			Target: map[string]string{"kind": "DaemonSet", "name": "tessera-agent"},
			Patch:  patch.String(),
		}},
	})
	if err != nil {
		return err
	}
	for _, n := range gpuNodes {
		var got string
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
			node, err := c.Client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			q := node.Status.Allocatable["nvidia.com/gpu"]
			slots := node.Status.Allocatable[gpu.ResourceShareSlot]
			got = fmt.Sprintf("%s and %s=%s", q.String(), gpu.ResourceShareSlot, slots.String())
			return q.Value() == gpus && slots.Value() == gpus*deviceplugin.SlotsPerGPU, nil
		})
		if err != nil {
			pods, _ := c.Client.CoreV1().Pods("tessera-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=tessera-agent"})
			var states []string
			for _, p := range pods.Items {
				states = append(states, fmt.Sprintf("%s on %s: %s", p.Name, p.Spec.NodeName, p.Status.Phase))
			}
			return fmt.Errorf("node %s advertises nvidia.com/gpu=%s after %s, want %d GPUs and their share slots from tessera-agent's device plugin (agent pods: %s)", n, got, timeout, gpus, strings.Join(states, "; "))
		}
	}
	return nil
}
