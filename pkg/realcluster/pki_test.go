package realcluster

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
)

// TestPKI: every certificate the cluster issues chains to its CA, with the
// subject that RBAC and the Node authorizer read (CN = user, O = groups),
// and a serving certificate is valid for the names pods and kubectl use.
func TestPKI(t *testing.T) {
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	tests := []struct {
		name     string
		cn       string
		orgs     []string
		ips      []net.IP
		dns      []string
		usage    x509.ExtKeyUsage
		verifyAs string
	}{
		{name: "kubelet-n1", cn: "system:node:n1", orgs: []string{"system:nodes"}, usage: x509.ExtKeyUsageClientAuth},
		{name: "apiserver", cn: "kube-apiserver", ips: []net.IP{net.ParseIP("10.96.0.1")}, dns: []string{"kubernetes.default.svc"}, usage: x509.ExtKeyUsageServerAuth, verifyAs: "kubernetes.default.svc"},
		{name: "apiserver-ip", cn: "kube-apiserver", ips: []net.IP{net.ParseIP("10.96.0.1")}, usage: x509.ExtKeyUsageServerAuth, verifyAs: "10.96.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kp, err := p.issue(tc.name, tc.cn, tc.orgs, tc.ips, tc.dns)
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.LoadX509KeyPair(kp.Cert, kp.Key)
			if err != nil {
				t.Fatalf("certificate and key do not match: %v", err)
			}
			cert, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			if cert.Subject.CommonName != tc.cn || len(cert.Subject.Organization) != len(tc.orgs) {
				t.Errorf("subject %v, want CN %s O %v", cert.Subject, tc.cn, tc.orgs)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tc.usage}, DNSName: tc.verifyAs}); err != nil {
				t.Errorf("does not verify against the CA for %v as %q: %v", tc.usage, tc.verifyAs, err)
			}
		})
	}
}
