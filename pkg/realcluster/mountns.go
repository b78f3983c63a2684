package realcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// nodePaths are the fixed host paths a kubelet, containerd and the CNI
// plugins use whatever their flags say (the device-plugin and pod-resources
// sockets under /var/lib/kubelet, container log links, shim sockets, the
// CNI cache, network namespace files). Each node gets its own copy: they
// are bind-mounted from the node's directory in the node's own mount
// namespace, so several nodes share one machine without sharing these, and
// a DaemonSet's hostPath /var/lib/kubelet/... reaches its own node's
// kubelet, as on a real machine.
var nodePaths = []string{"/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/run/containerd", "/var/lib/cni", "/run/netns"}

// startMountNamespace starts the node's mount namespace: a holder process
// (util-linux unshare, propagation slave: the host's mounts appear in it,
// its own never leak out) that bind-mounts the node's directories over
// nodePaths and then sleeps. The node's containerd and kubelet are started
// in it with nsenter; when the last of them and the holder exit, the
// namespace and every mount in it (volumes, container root file systems,
// network namespace files) are gone.
func (c *Cluster) startMountNamespace(n *node) error {
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, p := range nodePaths {
		src := filepath.Join(n.dir, "host", strings.TrimPrefix(p, "/"))
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		// The mount point must exist on the shared file system; Stop
		// removes the ones this run created (hostState).
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("creating mount point %s: %w", p, err)
		}
		fmt.Fprintf(&script, "mount --bind %q %q\n", src, p)
	}
	script.WriteString("echo ready\nexec sleep infinity\n")
	holder, err := c.spawn(n.name+"-mountns", c.Host.Tools["unshare"], "--mount", "--propagation", "slave", "--", "/bin/sh", "-c", script.String())
	if err != nil {
		return err
	}
	n.mountns = holder
	// Wait until the holder has made its mounts ("ready" in its log).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if data, _ := os.ReadFile(holder.log); strings.Contains(string(data), "ready") {
			return nil
		}
		if done, _ := holder.exited(); done {
			return holder.failure()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: its mount namespace was not ready in 10s: %s", n.name, holder.tail(5))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inNode returns the command line that runs bin with args inside the
// node's mount namespace.
func (c *Cluster) inNode(n *node, bin string, args ...string) (string, []string) {
	nsArgs := []string{"--target", strconv.Itoa(n.mountns.cmd.Process.Pid), "--mount", "--", bin}
	return c.Host.Tools["nsenter"], append(nsArgs, args...)
}
