package realcluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// pki is the cluster's certificate authority. Every component gets its own
// certificate, as in a kubeadm cluster: kubelets authenticate as
// system:node:<name> in system:nodes, so the Node authorizer and the
// NodeRestriction admission plugin limit each kubelet to its own node and
// pods, exactly as on a production cluster.
type pki struct {
	dir    string
	cert   *x509.Certificate
	key    crypto.Signer
	CAFile string
}

func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: "tessera-local-ca"}, key)
	if err != nil {
		return nil, fmt.Errorf("creating the cluster CA: %w", err)
	}
	p := &pki{dir: dir, cert: cert, key: key, CAFile: filepath.Join(dir, "ca.crt")}
	if err := certutil.WriteCert(p.CAFile, certPEM(cert.Raw)); err != nil {
		return nil, err
	}
	if err := writeKey(filepath.Join(dir, "ca.key"), key); err != nil {
		return nil, err
	}
	return p, nil
}

// keyPair is the paths of a certificate and its private key.
type keyPair struct{ Cert, Key string }

// issue signs a certificate for name (the files' base name) with the given
// subject; ips and dnsNames make it a serving certificate as well.
func (p *pki) issue(name, commonName string, orgs []string, ips []net.IP, dnsNames []string) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return keyPair{}, err
	}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if len(ips) > 0 || len(dnsNames) > 0 {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  usages,
		IPAddresses:  ips,
		DNSNames:     dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, key.Public(), p.key)
	if err != nil {
		return keyPair{}, fmt.Errorf("signing the certificate of %s: %w", commonName, err)
	}
	kp := keyPair{Cert: filepath.Join(p.dir, name+".crt"), Key: filepath.Join(p.dir, name+".key")}
	if err := certutil.WriteCert(kp.Cert, certPEM(der)); err != nil {
		return keyPair{}, err
	}
	return kp, writeKey(kp.Key, key)
}

// serviceAccountKey writes the key the API server signs service account
// tokens with (and the controller manager's token controller reads).
func (p *pki) serviceAccountKey() (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	path := filepath.Join(p.dir, "sa.key")
	return path, writeKey(path, key)
}

// kubeconfig writes a kubeconfig for server authenticating with kp, and
// returns its path.
func (p *pki) kubeconfig(name, server string, kp keyPair) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: p.CAFile}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificate: kp.Cert, ClientKey: kp.Key}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name}
	kc.CurrentContext = name
	path := filepath.Join(p.dir, name+".kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}

// clientKubeconfig issues a client certificate for user commonName in
// groups orgs and writes a kubeconfig for server that uses it.
func (p *pki) clientKubeconfig(name, commonName string, orgs []string, server string) (string, error) {
	kp, err := p.issue(name, commonName, orgs, nil, nil)
	if err != nil {
		return "", err
	}
	return p.kubeconfig(name, server, kp)
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: der})
}

func writeKey(path string, key crypto.Signer) error {
	pem, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return err
	}
	return keyutil.WriteKey(path, pem)
}
