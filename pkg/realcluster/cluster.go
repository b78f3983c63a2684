// Package realcluster runs a local Kubernetes cluster whose nodes are real:
// per node a kubelet and a containerd running real containers with runc,
// beside etcd, kube-apiserver, kube-controller-manager, kube-proxy and a
// bootstrap default scheduler, all as processes of this machine.
//
// It is what `make e2e` and `tessera playground --real-nodes` stand on: the
// place where Tessera is deployed from its own manifests, its two replicas
// elect a leader, and the pods it binds actually run. Where package
// localcluster's nodes are API objects, these run containers.
//
// The nodes share the host's kernel and network namespace, with distinct
// root directories, sockets, ports and pod subnets: pod networking is
// Debian's CNI bridge plugin (a bridge per node, host-local addresses from
// 10.244.<node>.0/24), and a single kube-proxy (iptables mode) serves every
// node, since they share one set of iptables rules. Services work, so pods
// reach the API server the way in-cluster clients do, through the
// kubernetes Service; there is no cluster DNS.
//
// Host requirements (CheckHost says which are missing): root, a cgroup file
// system (v1 or v2), containerd, runc, iptables and Debian's
// containernetworking-plugins.
package realcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tessera-sched/tessera/pkg/localcluster"
)

// ServiceCIDR is the cluster's Service address range; the kubernetes
// Service (the API server, for in-cluster clients) gets its first address.
const ServiceCIDR = "10.96.0.0/16"

// NodeOptions describe one node.
type NodeOptions struct {
	// Name is the node's name (and the kubelet's --hostname-override).
	Name string
	// Labels are put on the Node once it registered, e.g. the GPU Feature
	// Discovery labels of simulated GPUs.
	Labels map[string]string
	// Resources are extended resources the node advertises, e.g.
	// nvidia.com/gpu: 8 for simulated GPUs. They are patched into the
	// node's status, the documented way to advertise a resource without a
	// device plugin; the kubelet admits pods that request them.
	Resources v1.ResourceList
}

// Options configure Start.
type Options struct {
	// Dir holds everything the cluster writes: certificates, etcd's data,
	// every component's configuration, root directory and log
	// (<Dir>/logs). Required; Stop leaves no mount or process under it.
	Dir string
	// BinDir holds kube-apiserver, kube-controller-manager, kube-proxy,
	// kubelet (built from k8s.io/kubernetes by `make e2e`), tessera-scheduler
	// (the bootstrap default scheduler) and tessera-pause.
	BinDir string
	// Nodes are the nodes to start; at least one.
	Nodes []NodeOptions
	// Images are imported into every node besides the pause and busybox
	// images.
	Images []Image
	// Busybox is the static busybox the workload image is made of; empty
	// means /bin/busybox (Debian's busybox-static).
	Busybox string
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
}

// Cluster is a running real cluster.
type Cluster struct {
	// Host is what CheckHost found.
	Host *Host
	// Config reaches the API server as a cluster admin (system:masters).
	Config *rest.Config
	// Client is a clientset for Config.
	Client kubernetes.Interface
	// Dynamic is a dynamic client for Config (custom resources).
	Dynamic dynamic.Interface
	// Kubeconfig is the path of the admin kubeconfig, for kubectl.
	Kubeconfig string

	dir      string
	bin      string
	progress io.Writer
	pki      *pki
	server   string

	mu    sync.Mutex
	procs []*process

	etcd      *localcluster.Etcd
	apiserver *process
	// apiserverArgs are kube-apiserver's flags, for StartAPIServer.
	apiserverArgs []string
	kcm           *process
	proxy         *process
	scheduler     *process
	nodes         []*node

	netnsBefore map[string]bool
	before      hostState
	ipForward   string
}

// Binaries the cluster runs from Options.BinDir.
var binaries = []string{"kube-apiserver", "kube-controller-manager", "kube-proxy", "kubelet", "tessera-scheduler", "tessera-pause"}

// Start starts the cluster and waits until every node is Ready. On error
// everything started so far is stopped again.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Dir == "" || opts.BinDir == "" || len(opts.Nodes) == 0 {
		return nil, errors.New("realcluster: Options.Dir, Options.BinDir and at least one node are required")
	}
	var missing []string
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil {
			missing = append(missing, filepath.Join(opts.BinDir, b))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing binaries (build them with `make e2e-bin`): %s", strings.Join(missing, ", "))
	}
	host, err := CheckHost()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	c = &Cluster{Host: host, dir: dir, bin: opts.BinDir, progress: opts.Progress, netnsBefore: netnsNames(), before: snapshotHost()}
	if c.progress == nil {
		c.progress = io.Discard
	}
	defer func() {
		if err != nil {
			_ = c.Stop()
			c = nil
		}
	}()
	cg := "v2"
	if host.CgroupV1 {
		cg = "v1 (kubelets get failCgroupV1: false)"
	}
	c.say("host: root, cgroup %s, IP %s, containerd %s", cg, host.IP, host.Tools["containerd"])
	if err := c.startControlPlane(ctx); err != nil {
		return nil, err
	}
	images := append([]Image{PauseImageFrom(filepath.Join(opts.BinDir, "tessera-pause")), BusyboxImageFrom(orDefault(opts.Busybox, "/bin/busybox"))}, opts.Images...)
	imagesTar := filepath.Join(dir, "images.tar")
	start := time.Now()
	if err := writeImages(imagesTar, images); err != nil {
		return nil, fmt.Errorf("building images: %w", err)
	}
	c.say("images: built %d (%s) in %.1fs", len(images), refsOf(images), time.Since(start).Seconds())
	for i, no := range opts.Nodes {
		if err := c.startNode(ctx, i, no, imagesTar); err != nil {
			return nil, err
		}
	}
	if err := c.startProxy(); err != nil {
		return nil, err
	}
	for i, no := range opts.Nodes {
		if err := c.waitNodeReady(ctx, c.nodes[i], no); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) say(format string, args ...any) {
	fmt.Fprintf(c.progress, format+"\n", args...)
}

func (c *Cluster) startControlPlane(ctx context.Context) error {
	start := time.Now()
	p, err := newPKI(filepath.Join(c.dir, "pki"))
	if err != nil {
		return err
	}
	c.pki = p
	etcd, err := localcluster.StartEtcd(filepath.Join(c.dir, "etcd"))
	if err != nil {
		return err
	}
	c.etcd = etcd
	port, err := freePort()
	if err != nil {
		return err
	}
	c.server = "https://127.0.0.1:" + strconv.Itoa(port)
	serviceIP := net.ParseIP("10.96.0.1")
	serving, err := p.issue("apiserver", "kube-apiserver", nil,
		[]net.IP{net.ParseIP("127.0.0.1"), c.Host.IP, serviceIP},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return err
	}
	kubeletClient, err := p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil)
	if err != nil {
		return err
	}
	saKey, err := p.serviceAccountKey()
	if err != nil {
		return err
	}
	c.apiserverArgs = []string{
		"--etcd-servers=" + etcd.URL,
		"--bind-address=0.0.0.0",
		"--secure-port=" + strconv.Itoa(port),
		"--advertise-address=" + c.Host.IP.String(),
		"--tls-cert-file=" + serving.Cert, "--tls-private-key-file=" + serving.Key,
		"--client-ca-file=" + p.CAFile,
		"--kubelet-client-certificate=" + kubeletClient.Cert, "--kubelet-client-key=" + kubeletClient.Key,
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-key-file=" + saKey, "--service-account-signing-key-file=" + saKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--cert-dir=" + filepath.Join(c.dir, "apiserver"),
		"--profiling=false",
	}
	if c.apiserver, err = c.spawn("kube-apiserver", filepath.Join(c.bin, "kube-apiserver"), c.apiserverArgs...); err != nil {
		return err
	}
	if c.Kubeconfig, err = p.clientKubeconfig("admin", "tessera-admin", []string{"system:masters"}, c.server); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 100, 200
	c.Config = cfg
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if c.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	if err := c.waitAPIServer(ctx); err != nil {
		return err
	}
	c.say("control plane: etcd, kube-apiserver at %s (pods reach it as https://10.96.0.1:443) ready in %.1fs", c.server, time.Since(start).Seconds())

	start = time.Now()
	kcmConfig, err := p.clientKubeconfig("kube-controller-manager", "system:kube-controller-manager", nil, c.server)
	if err != nil {
		return err
	}
	kcmPort, err := freePort()
	if err != nil {
		return err
	}
	c.kcm, err = c.spawn("kube-controller-manager", filepath.Join(c.bin, "kube-controller-manager"),
		"--kubeconfig="+kcmConfig,
		"--authentication-kubeconfig="+kcmConfig, "--authorization-kubeconfig="+kcmConfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+filepath.Join(c.dir, "kube-controller-manager"),
		"--root-ca-file="+p.CAFile,
		"--service-account-private-key-file="+saKey,
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--leader-elect=false",
		"--profiling=false",
	)
	if err != nil {
		return err
	}
	// Pods need their namespace's default ServiceAccount and the cluster's
	// CA (kube-root-ca.crt), both made by the controller manager.
	if err := c.waitFor(ctx, c.kcm, 60*time.Second, "kube-controller-manager to publish kube-root-ca.crt and the default ServiceAccount", func(ctx context.Context) (bool, error) {
		if _, err := c.Client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{}); err != nil {
			return false, nil
		}
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return err
	}

	schedConfig, err := p.clientKubeconfig("kube-scheduler", "system:kube-scheduler", nil, c.server)
	if err != nil {
		return err
	}
	schedPort, err := freePort()
	if err != nil {
		return err
	}
	// The cluster's default scheduler (what kubeadm runs as a static pod):
	// tessera-scheduler with no configuration is upstream's kube-scheduler,
	// with none of Tessera's plugins enabled. It places the system pods,
	// Tessera's own among them, until StopDefaultScheduler.
	c.scheduler, err = c.spawn("default-scheduler", filepath.Join(c.bin, "tessera-scheduler"),
		"--kubeconfig="+schedConfig,
		"--authentication-kubeconfig="+schedConfig, "--authorization-kubeconfig="+schedConfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--leader-elect=false",
	)
	if err != nil {
		return err
	}
	c.say("controllers: kube-controller-manager and the default scheduler started in %.1fs", time.Since(start).Seconds())
	return nil
}

func (c *Cluster) waitAPIServer(ctx context.Context) error {
	return c.waitFor(ctx, c.apiserver, 60*time.Second, "kube-apiserver to be ready", func(ctx context.Context) (bool, error) {
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
}

// KillAPIServer sends SIGKILL to kube-apiserver, as a crash or an OOM kill
// would: every watch and request of every component breaks at once, and
// leaders cannot renew their leases until StartAPIServer. etcd keeps the
// cluster's state.
func (c *Cluster) KillAPIServer() {
	if done, _ := c.apiserver.exited(); done {
		return
	}
	_ = syscall.Kill(-c.apiserver.cmd.Process.Pid, syscall.SIGKILL)
	<-c.apiserver.done
}

// StartAPIServer starts kube-apiserver again, on the same address with the
// same flags and certificates, and waits until it is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	if done, _ := c.apiserver.exited(); !done {
		return errors.New("kube-apiserver is running")
	}
	p, err := c.spawn("kube-apiserver", filepath.Join(c.bin, "kube-apiserver"), c.apiserverArgs...)
	if err != nil {
		return err
	}
	c.apiserver = p
	return c.waitAPIServer(ctx)
}

// RestartKubelet stops the node's kubelet (SIGTERM, as systemd would) and
// starts it again with the same configuration, leaving its containers
// running, as on a node whose kubelet is upgraded or crashes: device plugins
// must register again, pods must be adopted.
func (c *Cluster) RestartKubelet(name string) error {
	for _, n := range c.nodes {
		if n.name != name {
			continue
		}
		n.kubelet.stop(20 * time.Second)
		k, err := c.spawn(n.name+"-kubelet", n.kubeletCmd[0], n.kubeletCmd[1:]...)
		if err != nil {
			return err
		}
		n.kubelet = k
		return nil
	}
	return fmt.Errorf("no node %q", name)
}

// KillContainer sends SIGKILL to a container of the node (containerID as
// in a pod's status, "containerd://<id>"), as the kernel's OOM killer or a
// crash would: the process gets no chance to clean up (a leader cannot
// release its lease). The kubelet then restarts it per the pod's policy.
func (c *Cluster) KillContainer(nodeName, containerID string) error {
	id := strings.TrimPrefix(containerID, "containerd://")
	for _, n := range c.nodes {
		if n.name != nodeName {
			continue
		}
		// containerd's runc shim keeps each namespace's containers under
		// <Root>/<namespace>.
		out, err := exec.Command(c.Host.Tools["runc"], "--root", filepath.Join(n.runcRoot(), "k8s.io"), "kill", id, "KILL").CombinedOutput()
		if err != nil {
			return fmt.Errorf("runc kill %s on node %s: %v: %s", id, nodeName, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	return fmt.Errorf("no node %q", nodeName)
}

// StopDefaultScheduler stops the bootstrap default scheduler, for a cluster
// where Tessera takes over as the default scheduler.
func (c *Cluster) StopDefaultScheduler() {
	if c.scheduler != nil {
		c.scheduler.stop(10 * time.Second)
	}
}

func (c *Cluster) startNode(ctx context.Context, i int, no NodeOptions, imagesTar string) error {
	start := time.Now()
	n := &node{name: no.Name, index: i, dir: filepath.Join(c.dir, "nodes", no.Name)}
	n.socket = filepath.Join(n.dir, "containerd", "containerd.sock")
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	c.nodes = append(c.nodes, n)
	config, err := n.writeContainerdConfig(c.Host)
	if err != nil {
		return err
	}
	if err := c.startMountNamespace(n); err != nil {
		return err
	}
	bin, args := c.inNode(n, c.Host.Tools["containerd"], "--config", config)
	if n.containerd, err = c.spawn(no.Name+"-containerd", bin, args...); err != nil {
		return err
	}
	if err := n.waitCRI(ctx); err != nil {
		return err
	}
	if err := n.importImages(ctx, c.Host, imagesTar); err != nil {
		return err
	}
	kubeconfig, err := c.pki.clientKubeconfig("kubelet-"+no.Name, "system:node:"+no.Name, []string{"system:nodes"}, c.server)
	if err != nil {
		return err
	}
	kubeletConfig, err := n.writeKubeletConfig(c.Host, c.pki.CAFile)
	if err != nil {
		return err
	}
	// The kubelet's root directory is the default /var/lib/kubelet: in the
	// node's mount namespace it is the node's own.
	bin, args = c.inNode(n, filepath.Join(c.bin, "kubelet"),
		"--config="+kubeletConfig,
		"--kubeconfig="+kubeconfig,
		"--hostname-override="+no.Name,
		"--node-ip="+c.Host.IP.String(),
		"--v=2",
	)
	n.kubeletCmd = append([]string{bin}, args...)
	n.kubelet, err = c.spawn(no.Name+"-kubelet", bin, args...)
	if err != nil {
		return err
	}
	c.say("node %s: containerd and kubelet started, images imported (%.1fs); pods get %s on bridge %s", no.Name, time.Since(start).Seconds(), n.podSubnet(), n.bridge())
	return nil
}

func (c *Cluster) startProxy() error {
	kubeconfig, err := c.pki.clientKubeconfig("kube-proxy", "system:kube-proxy", nil, c.server)
	if err != nil {
		return err
	}
	metrics, err := freePort()
	if err != nil {
		return err
	}
	healthz, err := freePort()
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
bindAddress: %s
metricsBindAddress: 127.0.0.1:%d
healthzBindAddress: 127.0.0.1:%d
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, kubeconfig, PodCIDR, c.nodes[0].name, c.Host.IP, metrics, healthz)
	path := filepath.Join(c.dir, "kube-proxy.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return err
	}
	c.ipForward = readSysctl("net/ipv4/ip_forward")
	if err := writeSysctl("net/ipv4/ip_forward", "1"); err != nil {
		return fmt.Errorf("enabling IP forwarding between the nodes' pod bridges: %w", err)
	}
	c.proxy, err = c.spawn("kube-proxy", filepath.Join(c.bin, "kube-proxy"), "--config="+path, "--v=2")
	return err
}

func (c *Cluster) waitNodeReady(ctx context.Context, n *node, no NodeOptions) error {
	start := time.Now()
	if err := c.waitFor(ctx, n.kubelet, 90*time.Second, "node "+n.name+" to be Ready", func(ctx context.Context) (bool, error) {
		node, err := c.Client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == v1.NodeReady {
				return cond.Status == v1.ConditionTrue, nil
			}
		}
		return false, nil
	}); err != nil {
		return err
	}
	if len(no.Labels) > 0 {
		patch, err := jsonPatchOf(map[string]any{"metadata": map[string]any{"labels": no.Labels}})
		if err != nil {
			return err
		}
		if _, err := c.Client.CoreV1().Nodes().Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("labelling node %s: %w", n.name, err)
		}
	}
	if len(no.Resources) > 0 {
		res := map[string]string{}
		for name, q := range no.Resources {
			res[string(name)] = q.String()
		}
		patch, err := jsonPatchOf(map[string]any{"status": map[string]any{"capacity": res}})
		if err != nil {
			return err
		}
		if _, err := c.Client.CoreV1().Nodes().Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			return fmt.Errorf("advertising %v on node %s: %w", res, n.name, err)
		}
		// The kubelet turns capacity into allocatable on its next status
		// update.
		if err := c.waitFor(ctx, n.kubelet, 30*time.Second, "node "+n.name+" to advertise its resources", func(ctx context.Context) (bool, error) {
			node, err := c.Client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for name, q := range no.Resources {
				if got, ok := node.Status.Allocatable[name]; !ok || got.Cmp(q) != 0 {
					return false, nil
				}
			}
			return true, nil
		}); err != nil {
			return err
		}
	}
	c.say("node %s: Ready in %.1fs%s", n.name, time.Since(start).Seconds(), describeResources(no.Resources))
	return nil
}

// waitFor polls cond every 250 ms until it holds, p exits (its log tail is
// the error), timeout passes or ctx ends.
func (c *Cluster) waitFor(ctx context.Context, p *process, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if p != nil {
			if done, _ := p.exited(); done {
				return false, p.failure()
			}
		}
		return cond(ctx)
	})
	if err != nil && wait.Interrupted(err) {
		msg := fmt.Sprintf("timed out after %s waiting for %s", timeout, what)
		if p != nil {
			msg += fmt.Sprintf("; last lines of %s:\n%s", p.log, p.tail(15))
		}
		return errors.New(msg)
	}
	return err
}

// LogDir is where every component writes its log.
func (c *Cluster) LogDir() string { return filepath.Join(c.dir, "logs") }

// NodeNames lists the nodes in start order.
func (c *Cluster) NodeNames() []string {
	var names []string
	for _, n := range c.nodes {
		names = append(names, n.name)
	}
	return names
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func refsOf(images []Image) string {
	var refs []string
	for _, img := range images {
		refs = append(refs, img.Ref)
	}
	return strings.Join(refs, ", ")
}

func describeResources(res v1.ResourceList) string {
	if len(res) == 0 {
		return ""
	}
	var parts []string
	for name, q := range res {
		parts = append(parts, fmt.Sprintf("%s=%s", name, q.String()))
	}
	return ", advertising " + strings.Join(parts, ", ")
}
