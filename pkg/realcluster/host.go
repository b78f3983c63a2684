package realcluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Host is what the cluster found on this machine.
type Host struct {
	// CgroupV1 is true where /sys/fs/cgroup is a cgroup v1 hierarchy; the
	// kubelet then needs failCgroupV1: false (1.35+ refuses v1 otherwise).
	CgroupV1 bool
	// IP is the address the API server advertises and pods reach it at
	// (through the kubernetes Service and kube-proxy): the first global
	// IPv4 address of an interface that is up.
	IP net.IP
	// Tools maps each host program to its path.
	Tools map[string]string
}

// hostTools are the programs the cluster runs from the host, with the Debian
// package that provides each (what `make e2e` installs).
var hostTools = []struct{ name, pkg string }{
	{"containerd", "containerd"},
	{"containerd-shim-runc-v2", "containerd"},
	{"ctr", "containerd"},
	{"runc", "runc"},
	{"iptables", "iptables"},
	{"mount", "mount"},
	{"ip", "iproute2"},
	{"unshare", "util-linux"},
	{"nsenter", "util-linux"},
}

// CNIBinDir is where Debian's containernetworking-plugins installs the
// bridge, host-local, loopback and portmap plugins that pod networking uses.
const CNIBinDir = "/usr/lib/cni"

// CheckHost says whether this machine can run real nodes, and what is
// missing if not: every missing requirement at once, each with the package
// or setting that provides it.
func CheckHost() (*Host, error) {
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "must run as root (the kubelet mounts volumes, runc creates namespaces and cgroups, CNI creates bridges)")
	}
	h := &Host{Tools: map[string]string{}}
	var missing []string
	for _, t := range hostTools {
		path, err := lookTool(t.name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s not found on PATH", t.name))
			missing = append(missing, t.pkg)
			continue
		}
		h.Tools[t.name] = path
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join(CNIBinDir, plugin)); err != nil {
			problems = append(problems, fmt.Sprintf("CNI plugin %s not found in %s", plugin, CNIBinDir))
			missing = append(missing, "containernetworking-plugins")
			break
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		problems = append(problems, "no cgroup file system at /sys/fs/cgroup")
	} else if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		h.CgroupV1 = true
		if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
			problems = append(problems, "cgroup v1 hierarchy without a memory controller at /sys/fs/cgroup/memory")
		}
	}
	if br := bridges(); len(br) > 0 {
		problems = append(problems, fmt.Sprintf("another real-node cluster is running or was not stopped (bridge %s exists; its node ports and pod subnets would collide): stop it, or delete the bridge with `ip link delete %s`", br[0], br[0]))
	}
	ip, err := hostIP()
	if err != nil {
		problems = append(problems, err.Error())
	}
	h.IP = ip
	if len(problems) == 0 {
		return h, nil
	}
	msg := "this machine cannot run real nodes:\n  - " + strings.Join(problems, "\n  - ")
	if len(missing) > 0 {
		msg += "\ninstall: apt-get install -y " + strings.Join(dedupe(missing), " ")
	}
	return nil, errors.New(msg)
}

// lookTool finds a program on PATH or in the sbin directories, which a
// non-login root shell may lack on its PATH.
func lookTool(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil && !st.IsDir() {
			return filepath.Join(dir, name), nil
		}
	}
	return "", exec.ErrNotFound
}

func hostIP() (net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 || strings.HasPrefix(iface.Name, bridgePrefix) {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.To4(), nil
			}
		}
	}
	return nil, errors.New("no network interface with a global IPv4 address is up (pods reach the API server at one)")
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
