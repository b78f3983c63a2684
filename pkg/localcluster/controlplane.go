// Package localcluster runs a real Kubernetes control plane — etcd and
// kube-apiserver — and tessera-scheduler inside the current process.
//
// It is what the playground (`tessera playground`), the integration tests and
// the trace tooling stand on: no cluster, no container engine and no binaries
// to download, yet the same API server, admission and scheduler code a real
// cluster runs. Nodes are API objects; nothing runs containers.
package localcluster

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"k8s.io/kubernetes/test/utils/ktesting"
)

// DefaultAPIServerFlags are the kube-apiserver flags a control plane without
// kubelets and controllers needs:
//   - ServiceAccount admission is off because no controller creates the
//     "default" ServiceAccount that it would demand of every pod;
//   - TaintNodesByCondition is off because no kubelet ever clears the
//     not-ready taint it puts on new nodes (scheduler_perf does the same).
//   - RBAC is on so that the shipped ClusterRoles are exercised for real.
var DefaultAPIServerFlags = []string{
	"--authorization-mode=RBAC",
	"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
	"--endpoint-reconciler-type=none",
}

// Options configure Start.
type Options struct {
	// Dir holds etcd's data and the generated kubeconfig. Required.
	Dir string
	// APIServerFlags are extra kube-apiserver flags, e.g.
	// --feature-gates=GenericWorkload=true.
	APIServerFlags []string
	// Log receives the harness's log lines; nil discards them.
	Log io.Writer
	// EtcdProxy, if set, is put between kube-apiserver and etcd, for tests
	// that make etcd slow or unreachable. Stop closes it.
	EtcdProxy *EtcdProxy
}

// ControlPlane is a running etcd + kube-apiserver pair.
type ControlPlane struct {
	// Config connects to the API server with full privileges.
	Config *rest.Config
	// Client is a clientset for Config.
	Client kubernetes.Interface
	// Kubeconfig is the path of a kubeconfig file for Config, for kubectl
	// and for the scheduler.
	Kubeconfig string

	etcd     *Etcd
	teardown func()
	proxy    *EtcdProxy
	tb       *programTB
}

// Start starts etcd and kube-apiserver for a test: tb is the test, and the
// control plane stops when the test ends.
func Start(tb ktesting.TB, opts Options) (*ControlPlane, error) {
	cp, err := start(tb, opts)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(cp.Stop)
	return cp, nil
}

// StartProgram starts etcd and kube-apiserver for a program (not a test).
// The caller must call Stop.
func StartProgram(opts Options) (cp *ControlPlane, err error) {
	tb := newProgramTB("tessera", opts.Log)
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatalError)
			if !ok {
				panic(r)
			}
			tb.Close()
			cp, err = nil, fmt.Errorf("starting control plane: %s", f.msg)
		}
	}()
	cp, err = start(tb, opts)
	if err != nil {
		tb.Close()
		return nil, err
	}
	cp.tb = tb
	return cp, nil
}

func start(tb ktesting.TB, opts Options) (*ControlPlane, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("localcluster: Options.Dir is required")
	}
	etcd, err := StartEtcd(filepath.Join(opts.Dir, "etcd"))
	if err != nil {
		return nil, err
	}
	storage := storagebackend.NewDefaultConfig("/registry", nil)
	storage.Transport.ServerList = []string{etcd.URL}
	if opts.EtcdProxy != nil {
		u, err := opts.EtcdProxy.start(etcd.URL)
		if err != nil {
			etcd.Stop()
			return nil, err
		}
		storage.Transport.ServerList = []string{u}
	}

	if err := writeServingCert(opts.Dir); err != nil {
		etcd.Stop()
		return nil, err
	}
	flags := append(append([]string{}, DefaultAPIServerFlags...), "--cert-dir="+opts.Dir)
	flags = append(flags, opts.APIServerFlags...)
	instance := kubeapiservertesting.NewDefaultTestServerOptions()
	server, err := kubeapiservertesting.StartTestServer(tb, instance, flags, storage)
	if err != nil {
		etcd.Stop()
		return nil, fmt.Errorf("starting kube-apiserver: %w", err)
	}
	cfg := rest.CopyConfig(server.ClientConfig)
	// The playground and tests create objects in bursts; the default
	// client-side rate limit (5 qps) would dominate their run time.
	cfg.QPS, cfg.Burst = 500, 1000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		server.TearDownFn()
		etcd.Stop()
		return nil, err
	}
	cp := &ControlPlane{Config: cfg, Client: client, etcd: etcd, teardown: server.TearDownFn, proxy: opts.EtcdProxy}
	cp.Kubeconfig = filepath.Join(opts.Dir, "kubeconfig")
	if err := WriteKubeconfig(cfg, cp.Kubeconfig); err != nil {
		cp.Stop()
		return nil, err
	}
	return cp, nil
}

// writeServingCert writes a self-signed serving certificate for the API
// server into dir, as apiserver.crt and apiserver.key, the names
// kube-apiserver looks for in its --cert-dir. Without them,
// kube-apiserver's test server generates it and caches it in its own source
// directory in the Go module cache (found through runtime.Caller), which
// exists only on the machine that built the binary: `tessera playground`
// or a test binary copied to another machine (a GPU node, say) could not
// start its control plane. Builds with -trimpath cannot start it at all,
// because the test server insists on finding that directory's path.
func writeServingCert(dir string) error {
	cert, key, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"})
	if err != nil {
		return fmt.Errorf("generating the API server's serving certificate: %w", err)
	}
	if err := certutil.WriteCert(filepath.Join(dir, "apiserver.crt"), cert); err != nil {
		return err
	}
	return keyutil.WriteKey(filepath.Join(dir, "apiserver.key"), key)
}

// Stop stops the API server, then etcd (the reverse order hangs the API
// server's shutdown). It is safe to call twice.
func (cp *ControlPlane) Stop() {
	if cp.teardown != nil {
		done := make(chan struct{})
		go func() { cp.teardown(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		cp.teardown = nil
	}
	if cp.proxy != nil {
		cp.proxy.Close()
		cp.proxy = nil
	}
	if cp.etcd != nil {
		cp.etcd.Stop()
		cp.etcd = nil
	}
	if cp.tb != nil {
		cp.tb.Close()
		cp.tb = nil
	}
}

// WriteKubeconfig writes a kubeconfig for cfg to path (mode 0600), so that
// kubectl and the scheduler's --config can reach the API server.
func WriteKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["tessera"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
		CertificateAuthority:     cfg.CAFile,
		TLSServerName:            cfg.ServerName,
		InsecureSkipTLSVerify:    cfg.Insecure,
	}
	kc.AuthInfos["tessera"] = &clientcmdapi.AuthInfo{
		Token:                 cfg.BearerToken,
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Impersonate:           cfg.Impersonate.UserName,
		ImpersonateUID:        cfg.Impersonate.UID,
		ImpersonateGroups:     cfg.Impersonate.Groups,
		ImpersonateUserExtra:  cfg.Impersonate.Extra,
	}
	kc.Contexts["tessera"] = &clientcmdapi.Context{Cluster: "tessera", AuthInfo: "tessera"}
	kc.CurrentContext = "tessera"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*kc, path)
}
