package proxy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// getCertificate picks the certificate for a TLS handshake: from the local
// CA, or from ACME (which also answers TLS-ALPN-01 challenges).
func (s *Server) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if name == "" {
		return nil, errors.New("tls: no server name (SNI) in the handshake")
	}
	if c := s.table.Load().certFor(name); c != nil {
		return c, nil // a route's custom certificate
	}
	if s.localCA != nil {
		if !s.table.Load().tlsHost(name) {
			return nil, fmt.Errorf("tls: no TLS route for %q", name)
		}
		return s.localCA.leaf(name)
	}
	// autocert answers TLS-ALPN-01 challenges (hello offers acme.ALPNProto)
	// as well as ordinary handshakes.
	return s.acme.GetCertificate(hello)
}

// acmeHostPolicy lets ACME issue certificates only for hosts of TLS routes.
func (s *Server) acmeHostPolicy(_ context.Context, host string) error {
	if !s.table.Load().tlsHost(strings.ToLower(host)) {
		return fmt.Errorf("acme: no TLS route for %q", host)
	}
	return nil
}

// localCA is a certificate authority kept in a directory (ca.crt, ca.key)
// that issues a leaf certificate per host on demand and keeps it in memory.
type localCA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certDER []byte

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
}

// loadOrCreateCA reads the CA in dir, or makes one there.
func loadOrCreateCA(dir string) (*localCA, error) {
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	ca := &localCA{leaves: map[string]*tls.Certificate{}}
	certPEM, err := os.ReadFile(certPath)
	if err == nil {
		keyPEM, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, fmt.Errorf("read local CA key: %w", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("load local CA in %s: %w", dir, err)
		}
		ca.certDER = pair.Certificate[0]
		if ca.cert, err = x509.ParseCertificate(ca.certDER); err != nil {
			return nil, fmt.Errorf("load local CA in %s: %w", dir, err)
		}
		signer, ok := pair.PrivateKey.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("load local CA in %s: key cannot sign", dir)
		}
		ca.key = signer
		return ca, nil
	}
	if !os.IsNotExist(err) {
		return nil, fmt.Errorf("read local CA: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make local CA dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "bosun proxy local CA", Organization: []string{"bosun"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("make local CA: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("write local CA key: %w", err)
	}
	if err := writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("write local CA certificate: %w", err)
	}
	ca.certDER = der
	ca.cert, _ = x509.ParseCertificate(der)
	ca.key = key
	return ca, nil
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// leaf returns a certificate for name, issued on first use.
func (ca *localCA) leaf(name string) (*tls.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c, ok := ca.leaves[name]; ok && time.Until(c.Leaf.NotAfter) > 24*time.Hour {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(0, 0, 90),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der, ca.certDER}, PrivateKey: key, Leaf: leaf}
	ca.leaves[name] = c
	return c, nil
}
