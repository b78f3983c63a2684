package realcluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Stop stops the cluster and removes what it put on the host, in the order
// a node is drained: controllers first (nothing recreates pods), then each
// kubelet, then every pod sandbox through containerd's CRI (which removes
// its network namespace, veth and IP lease and unmounts its file systems),
// then the runtimes, kube-proxy and its iptables rules, the API server and
// etcd; then the volume mounts the kubelets leave (a kubelet does not
// unmount on exit), the pod bridges and the IP forwarding setting. It
// returns an error naming anything that had to be forced or could not be
// removed. Stop is safe to call twice.
func (c *Cluster) Stop() error {
	var problems []string
	stopped := func(p *process, grace time.Duration) {
		if p != nil {
			p.stop(grace)
		}
	}
	stopped(c.scheduler, 10*time.Second)
	stopped(c.kcm, 10*time.Second)
	for _, n := range c.nodes {
		stopped(n.kubelet, 20*time.Second)
	}
	for _, n := range c.nodes {
		if n.containerd == nil {
			continue
		}
		if done, _ := n.containerd.exited(); done {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		if err := n.removePods(ctx); err != nil {
			problems = append(problems, fmt.Sprintf("removing pods: %v", err))
		}
		cancel()
	}
	for _, n := range c.nodes {
		stopped(n.containerd, 15*time.Second)
		if forced := n.killContainers(c.Host); len(forced) > 0 {
			problems = append(problems, fmt.Sprintf("node %s: killed containers its runtime left running: %s", n.name, strings.Join(forced, ", ")))
		}
		// The last process of the node's mount namespace: its mounts go
		// with it.
		stopped(n.mountns, 5*time.Second)
	}
	if c.proxy != nil {
		stopped(c.proxy, 10*time.Second)
		cleanup := exec.Command(filepath.Join(c.bin, "kube-proxy"), "--cleanup", "--config="+filepath.Join(c.dir, "kube-proxy.yaml"))
		cleanup.Env = childEnv()
		out, err := cleanup.CombinedOutput()
		if err != nil {
			problems = append(problems, fmt.Sprintf("kube-proxy --cleanup: %v: %s", err, lastLine(string(out))))
		}
		c.proxy = nil
	}
	stopped(c.apiserver, 15*time.Second)
	if c.etcd != nil {
		c.etcd.Stop()
		c.etcd = nil
	}
	if c.dir != "" {
		if pids := processesUnder(c.dir); len(pids) > 0 {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			problems = append(problems, fmt.Sprintf("killed %d leftover processes: %v", len(pids), pids))
		}
		if err := unmountUnder(c.dir); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, ns := range newNetns(c.netnsBefore) {
		path := filepath.Join(netnsDir, ns)
		_ = unix.Unmount(path, unix.MNT_DETACH)
		if err := os.Remove(path); err != nil {
			problems = append(problems, fmt.Sprintf("network namespace %s: %v", ns, err))
		} else {
			problems = append(problems, fmt.Sprintf("removed network namespace %s that the runtime left", ns))
		}
	}
	for _, br := range bridges() {
		ip, _ := lookTool("ip")
		if out, err := exec.Command(orDefault(ip, "ip"), "link", "delete", br).CombinedOutput(); err != nil {
			problems = append(problems, fmt.Sprintf("deleting bridge %s: %v: %s", br, err, lastLine(string(out))))
		}
	}
	if c.dir != "" {
		problems = append(problems, c.before.restore(c.dir)...)
	}
	if c.ipForward != "" {
		_ = writeSysctl("net/ipv4/ip_forward", c.ipForward)
		c.ipForward = ""
	}
	c.nodes, c.scheduler, c.kcm, c.apiserver = nil, nil, nil, nil
	if len(problems) > 0 {
		return errors.New("stopping the cluster: " + strings.Join(problems, "; "))
	}
	return nil
}

// Leftovers lists what of a stopped cluster is still on the host:
// processes (started from its directory, or with their root file system
// in it), mounts under it, pod bridges, and what was not there before it
// started: network namespaces, iptables chains and rules, container log
// links and the kubelet's and containerd's fixed host directories. Empty
// after a clean Stop.
func (c *Cluster) Leftovers() []string {
	var left []string
	for _, pid := range processesUnder(c.dir) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		left = append(left, fmt.Sprintf("process %d: %s", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	for _, m := range mountsUnder(c.dir) {
		left = append(left, "mount "+m)
	}
	for _, br := range bridges() {
		left = append(left, "bridge "+br)
	}
	for _, ns := range newNetns(c.netnsBefore) {
		left = append(left, "network namespace "+ns)
	}
	return append(left, c.before.leftovers(c.dir)...)
}

// killContainers kills and deletes the containers runc still runs for the
// node (none after a clean removePods) and returns their ids.
func (n *node) killContainers(h *Host) []string {
	root := n.runcRoot()
	out, err := exec.Command(h.Tools["runc"], "--root", root, "list", "-q").Output()
	if err != nil {
		return nil
	}
	var ids []string
	for _, id := range strings.Fields(string(out)) {
		_ = exec.Command(h.Tools["runc"], "--root", root, "kill", id, "KILL").Run()
		_ = exec.Command(h.Tools["runc"], "--root", root, "delete", "--force", id).Run()
		ids = append(ids, id)
	}
	return ids
}

// processesUnder lists the processes started from a program or with
// arguments under dir (containerd's shims among them), or whose root file
// system is under dir (containers).
func processesUnder(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); err == nil && root != "/" && strings.HasPrefix(root, dir) {
			pids = append(pids, pid)
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(cmd), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsUnder lists the mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mounts []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mounts = append(mounts, mp)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// unmountUnder unmounts everything mounted under dir (the kubelets' volume
// mounts; containers' file systems if a runtime died), deepest first.
func unmountUnder(dir string) error {
	var failed []string
	for attempt := 0; attempt < 3; attempt++ {
		mounts := mountsUnder(dir)
		if len(mounts) == 0 {
			return nil
		}
		failed = failed[:0]
		for _, m := range mounts {
			if err := unix.Unmount(m, 0); err != nil {
				if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", m, err))
				}
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not unmount %s", strings.Join(failed, ", "))
	}
	return nil
}

const netnsDir = "/var/run/netns"

func netnsNames() map[string]bool {
	names := map[string]bool{}
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names
}

// newNetns lists the network namespaces containerd made (cni-...) that
// were not there before the cluster started.
func newNetns(before map[string]bool) []string {
	var added []string
	for name := range netnsNames() {
		if !before[name] && strings.HasPrefix(name, "cni-") {
			added = append(added, name)
		}
	}
	sort.Strings(added)
	return added
}

// bridges lists the pod bridges of this package's clusters.
func bridges() []string {
	entries, _ := os.ReadDir("/sys/class/net")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), bridgePrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func readSysctl(name string) string {
	data, err := os.ReadFile(filepath.Join("/proc/sys", name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func writeSysctl(name, value string) error {
	return os.WriteFile(filepath.Join("/proc/sys", name), []byte(value), 0o644)
}

func jsonPatchOf(v any) ([]byte, error) { return json.Marshal(v) }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
