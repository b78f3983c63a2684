package localcluster

import (
	"crypto/tls"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	certutil "k8s.io/client-go/util/cert"
)

// TestServesOwnCertificate checks that the API server serves the certificate
// the control plane generated in its directory, not one that the upstream
// test server caches beside its sources in the module cache: a binary run
// where the module cache is absent must still start.
func TestServesOwnCertificate(t *testing.T) {
	cp, err := Start(t, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	want, err := certutil.CertsFromFile(filepath.Join(filepath.Dir(cp.Kubeconfig), "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cp.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	// No SNI name: the API server answers with its serving certificate, not
	// the loopback one that cp.Config trusts.
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := conn.ConnectionState().PeerCertificates
	if len(got) == 0 || !got[0].Equal(want[0]) {
		t.Fatalf("API server serves %v, want the generated certificate %v", got[0].Subject, want[0].Subject)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cp.Kubeconfig), "apiserver.key")); err != nil {
		t.Error(err)
	}
}
