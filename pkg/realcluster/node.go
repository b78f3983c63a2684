package realcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"

	"github.com/tessera-sched/tessera/pkg/internal/unixgrpc"
)

// bridgePrefix names the Linux bridges the nodes' pod networks use
// (tessera-br0, tessera-br1, ...), so that leftovers can be recognised.
const bridgePrefix = "tessera-br"

// PodCIDR is the address range of all pods; node i gets 10.244.i.0/24.
const PodCIDR = "10.244.0.0/16"

// node is one real node: a containerd and a kubelet in the node's own
// mount namespace (its own /var/lib/kubelet, /var/log/pods, /run/containerd,
// ...), with its own socket and ports, sharing the host's kernel and
// network namespace with the other nodes (so one kube-proxy serves them
// all).
type node struct {
	name       string
	index      int
	dir        string
	socket     string
	mountns    *process
	containerd *process
	kubelet    *process
	// kubeletCmd is the kubelet's command line, for RestartKubelet.
	kubeletCmd []string
}

// runcRoot is where runc keeps the state of the node's containers.
func (n *node) runcRoot() string { return filepath.Join(n.dir, "containerd", "runc") }

func (n *node) podSubnet() string { return fmt.Sprintf("10.244.%d.0/24", n.index) }
func (n *node) bridge() string    { return fmt.Sprintf("%s%d", bridgePrefix, n.index) }

// writeContainerdConfig writes containerd's configuration (version 2, as
// containerd 1.6 reads it): all state under the node's directory, the
// local pause image as sandbox image, and the CNI bridge network.
func (n *node) writeContainerdConfig(h *Host) (string, error) {
	for _, d := range []string{"root", "state", "cni", "cni-state"} {
		if err := os.MkdirAll(filepath.Join(n.dir, "containerd", d), 0o755); err != nil {
			return "", err
		}
	}
	// The CRI plugin's restrict_oom_score_adj keeps runc from lowering a
	// container's oom_score_adj below its own, which this kind of host
	// denies ("can't get final child's PID from pipe: EOF" otherwise).
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0

[grpc]
  address = %q

[ttrpc]
  address = %q

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %[7]q
        Root = %[8]q
        SystemdCgroup = false
    # Stands in for the NVIDIA container runtime's handler, with plain runc
    # and no GPUs, so that pods with runtimeClassName: nvidia (the GPU
    # Operator's RuntimeClass, which tessera-agent's DaemonSet uses) run.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
        BinaryName = %[7]q
        Root = %[8]q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`,
		filepath.Join(n.dir, "containerd", "root"),
		filepath.Join(n.dir, "containerd", "state"),
		n.socket,
		n.socket+".ttrpc",
		filepath.Join(n.dir, "containerd", "opt"),
		PauseImage,
		h.Tools["runc"],
		n.runcRoot(),
		CNIBinDir,
		filepath.Join(n.dir, "containerd", "cni"),
	)
	path := filepath.Join(n.dir, "containerd", "config.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return "", err
	}
	// A bridge per node, its gateway on the host: pods reach the host (and
	// so the API server, through kube-proxy's rules for the kubernetes
	// Service) and the pods of every other node by plain routing.
	cni := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "tessera-" + n.name,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      n.bridge(),
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": filepath.Join(n.dir, "containerd", "cni-state"),
					"ranges":  []any{[]any{map[string]any{"subnet": n.podSubnet()}}},
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(cni, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(filepath.Join(n.dir, "containerd", "cni", "10-tessera.conflist"), data, 0o644)
}

// kubeletPorts are the node's kubelet ports: the API (logs, exec) and the
// health port, distinct per node because all nodes share one network
// namespace.
func (n *node) kubeletPorts() (api, healthz int) {
	return 11250 + 2*n.index, 11251 + 2*n.index
}

// writeKubeletConfig writes the node's KubeletConfiguration.
func (n *node) writeKubeletConfig(h *Host, caFile string) (string, error) {
	api, healthz := n.kubeletPorts()
	cfg := map[string]any{
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"kind":                     "KubeletConfiguration",
		"containerRuntimeEndpoint": "unix://" + n.socket,
		"cgroupDriver":             "cgroupfs",
		// Every node's pods share the host's cgroup tree; per-QoS parent
		// cgroups of several kubelets would fight over the same names.
		"cgroupsPerQOS":          false,
		"enforceNodeAllocatable": []string{},
		"failSwapOn":             false,
		"port":                   api,
		"healthzPort":            healthz,
		"healthzBindAddress":     "127.0.0.1",
		"readOnlyPort":           0,
		"address":                h.IP.String(),
		// The default would create a directory on the host, outside the
		// node's mount namespace's private paths.
		"volumePluginDir": "/var/lib/kubelet/volume-plugins",
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": false},
			"x509":      map[string]any{"clientCAFile": caFile},
		},
		"authorization": map[string]any{"mode": "AlwaysAllow"},
		// The images were imported, not pulled: garbage-collecting them
		// would leave pods that cannot start. Disk pressure on a shared
		// developer machine should not evict the test's pods either.
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"evictionHard":                map[string]string{"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
		"nodeStatusUpdateFrequency":   "5s",
		"syncFrequency":               "10s",
		"fileCheckFrequency":          "5s",
		"serializeImagePulls":         false,
		"resolvConf":                  "/etc/resolv.conf",
	}
	if h.CgroupV1 {
		// Kubelets from 1.35 on refuse a cgroup v1 host unless told.
		cfg["failCgroupV1"] = false
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(n.dir, "kubelet-config.yaml")
	return path, os.WriteFile(path, data, 0o644)
}

// waitSocket waits for containerd's CRI to answer.
func (n *node) waitCRI(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if _, err = os.Stat(n.socket); err == nil {
			err = n.withCRI(ctx, func(rt runtimeapi.RuntimeServiceClient, _ runtimeapi.ImageServiceClient) error {
				_, err := rt.Version(ctx, &runtimeapi.VersionRequest{})
				return err
			})
		}
		if err == nil {
			return nil
		}
		if done, _ := n.containerd.exited(); done {
			return n.containerd.failure()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd of node %s does not answer on %s: %w", n.name, n.socket, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (n *node) withCRI(ctx context.Context, f func(runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) error) error {
	conn, err := unixgrpc.Dial(n.socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	return f(runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn))
}

// importImages imports the images tarball into the node's containerd, in
// the namespace the CRI uses.
func (n *node) importImages(ctx context.Context, h *Host, tarPath string) error {
	cmd := exec.CommandContext(ctx, h.Tools["ctr"], "--address", n.socket, "--namespace", "k8s.io", "images", "import", "--no-unpack=false", tarPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("importing images into node %s: ctr images import: %v: %s", n.name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removePods stops and removes every pod sandbox through the CRI, as the
// kubelet would: containerd then tears down each pod's network (veth, IP
// lease, network namespace) and unmounts its shm and root file systems, so
// that nothing is left on the host.
func (n *node) removePods(ctx context.Context) error {
	return n.withCRI(ctx, func(rt runtimeapi.RuntimeServiceClient, _ runtimeapi.ImageServiceClient) error {
		list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			return err
		}
		var errs []string
		for _, sb := range list.Items {
			if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				errs = append(errs, fmt.Sprintf("stop %s: %v", sb.Metadata.GetName(), err))
			}
			if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				errs = append(errs, fmt.Sprintf("remove %s: %v", sb.Metadata.GetName(), err))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("node %s: %s", n.name, strings.Join(errs, "; "))
		}
		return nil
	})
}
