package realcluster

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// hostState is what the cluster changes on the host outside its directory,
// as found before it started, so that Stop can undo exactly what the run
// added and Leftovers can tell what it did not:
//   - iptables and ip6tables chains and rules: kube-proxy's (which
//     `kube-proxy --cleanup` removes) and the kubelet's own
//     (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), which no
//     command removes;
//   - directories at fixed host paths: the kubelet's links to container
//     logs in /var/log/containers, its device-plugin socket directory
//     /var/lib/kubelet/device-plugins (fixed whatever --root-dir says),
//     containerd's shim socket directory /run/containerd, the CNI library's
//     cache /var/lib/cni and the network namespaces' /run/netns.
type hostState struct {
	tables map[string]map[string]*iptablesTable // tool → table → contents
	paths  map[string]bool                      // fixed paths that existed
}

type iptablesTable struct {
	chains map[string]bool
	rules  []string // "-A CHAIN ..." lines, in order
}

// fixedPaths are the host paths outside Options.Dir that a kubelet or
// containerd creates.
// They are also the mount points of each node's private copies (nodePaths),
// created on the host if missing.
var fixedPaths = []string{"/var/log/containers", "/var/log/pods", "/var/lib/kubelet", "/run/containerd", "/var/lib/cni", "/run/netns"}

var iptablesTools = []string{"iptables", "ip6tables"}

func snapshotHost() hostState {
	s := hostState{tables: map[string]map[string]*iptablesTable{}, paths: map[string]bool{}}
	for _, tool := range iptablesTools {
		if t, err := saveIptables(tool); err == nil {
			s.tables[tool] = t
		}
	}
	for _, p := range fixedPaths {
		if _, err := os.Lstat(p); err == nil {
			s.paths[p] = true
		}
	}
	return s
}

func saveIptables(tool string) (map[string]*iptablesTable, error) {
	save, err := lookTool(tool + "-save")
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(save).Output()
	if err != nil {
		return nil, err
	}
	tables := map[string]*iptablesTable{}
	var cur *iptablesTable
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			cur = &iptablesTable{chains: map[string]bool{}}
			tables[line[1:]] = cur
		case cur == nil:
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			cur.chains[name] = true
		case strings.HasPrefix(line, "-A "):
			cur.rules = append(cur.rules, line)
		}
	}
	return tables, sc.Err()
}

// builtinChains are the kernel's own chains: they appear in a table's
// listing as soon as anything loads the table (on a fresh host, the
// cluster's first rule), and are never the cluster's to remove; rules the
// cluster added to them are.
var builtinChains = map[string]bool{"PREROUTING": true, "INPUT": true, "FORWARD": true, "OUTPUT": true, "POSTROUTING": true}

// addedIptables returns, per tool, an iptables-restore script that removes
// the chains and rules added since before, and a description of them.
func (before hostState) addedIptables() (map[string]string, []string) {
	scripts := map[string]string{}
	var added []string
	for _, tool := range iptablesTools {
		old, ok := before.tables[tool]
		if !ok {
			continue
		}
		now, err := saveIptables(tool)
		if err != nil {
			continue
		}
		var script strings.Builder
		for _, name := range sortedTables(now) {
			t := now[name]
			prev := old[name]
			if prev == nil {
				prev = &iptablesTable{chains: map[string]bool{}}
			}
			oldRules := map[string]bool{}
			for _, r := range prev.rules {
				oldRules[r] = true
			}
			var deletes, chains []string
			for _, r := range t.rules {
				chain := strings.Fields(r)[1]
				if !oldRules[r] && (prev.chains[chain] || builtinChains[chain]) {
					deletes = append(deletes, "-D"+strings.TrimPrefix(r, "-A"))
					added = append(added, fmt.Sprintf("%s -t %s rule %s", tool, name, r))
				}
			}
			for c := range t.chains {
				if !prev.chains[c] && !builtinChains[c] {
					chains = append(chains, c)
					added = append(added, fmt.Sprintf("%s -t %s chain %s", tool, name, c))
				}
			}
			if len(deletes) == 0 && len(chains) == 0 {
				continue
			}
			sort.Strings(chains)
			fmt.Fprintf(&script, "*%s\n", name)
			for _, d := range deletes {
				fmt.Fprintln(&script, d)
			}
			for _, c := range chains {
				fmt.Fprintf(&script, "-F %s\n", c)
			}
			for _, c := range chains {
				fmt.Fprintf(&script, "-X %s\n", c)
			}
			fmt.Fprintln(&script, "COMMIT")
		}
		if script.Len() > 0 {
			scripts[tool] = script.String()
		}
	}
	return scripts, added
}

// restore removes what the cluster under dir added to the host and returns
// what it could not remove.
func (before hostState) restore(dir string) []string {
	var problems []string
	scripts, _ := before.addedIptables()
	for tool, script := range scripts {
		restore, err := lookTool(tool + "-restore")
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s-restore not found to remove the cluster's rules", tool))
			continue
		}
		cmd := exec.Command(restore, "--noflush")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			problems = append(problems, fmt.Sprintf("%s-restore: %v: %s", tool, err, lastLine(string(out))))
		}
	}
	for _, link := range containerLogLinks(dir) {
		_ = os.Remove(link)
	}
	for _, p := range fixedPaths {
		if before.paths[p] {
			continue
		}
		// Created by this run: remove it if nothing but empty directories
		// and sockets is left in it.
		if err := removeIfOnlySockets(p); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return problems
}

// leftovers lists what the cluster under dir added to the host and is still
// there.
func (before hostState) leftovers(dir string) []string {
	_, left := before.addedIptables()
	for _, link := range containerLogLinks(dir) {
		left = append(left, "log link "+link)
	}
	for _, p := range fixedPaths {
		if _, err := os.Lstat(p); err == nil && !before.paths[p] {
			left = append(left, "directory "+p)
		}
	}
	return left
}

// containerLogLinks lists the links in /var/log/containers that point into
// dir (a kubelet links each container's log there).
func containerLogLinks(dir string) []string {
	entries, _ := os.ReadDir("/var/log/containers")
	var links []string
	for _, e := range entries {
		p := filepath.Join("/var/log/containers", e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
			links = append(links, p)
		}
	}
	return links
}

// removeIfOnlySockets removes the tree at root if it holds only
// directories and sockets (what a stopped kubelet or containerd leaves).
func removeIfOnlySockets(root string) error {
	if _, err := os.Lstat(root); err != nil {
		return nil
	}
	var other []string
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Mode()&os.ModeSocket == 0 {
			other = append(other, p)
		}
		return nil
	})
	if len(other) > 0 {
		return fmt.Errorf("%s was created by the cluster but now holds files (%s); not removed", root, strings.Join(other, ", "))
	}
	return os.RemoveAll(root)
}

func sortedTables(m map[string]*iptablesTable) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
