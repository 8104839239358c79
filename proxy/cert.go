package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A custom certificate (DeployRequest.TLSCertificate and TLSKey, Kamal's
// proxy.ssl map) is served for its route's hosts, chosen by SNI, instead of
// an ACME or local-CA one. The key never leaves the proxy: the control API
// lists a CertificateInfo, the state file names a file of its own (mode
// 0600) under StateDir/tls.

// CertificateInfo describes a route's custom certificate without its key.
type CertificateInfo struct {
	Serial   string    `json:"serial"`    // the leaf's serial number, hex
	SHA256   string    `json:"sha256"`    // fingerprint of the leaf (DER), hex
	Names    []string  `json:"names"`     // the leaf's DNS names and IP addresses
	NotAfter time.Time `json:"not_after"` // when the leaf expires
}

// ParseCertificate reads a PEM certificate (the leaf first, then its chain)
// and the PEM private key that goes with it, and checks that the key is the
// leaf's, that the leaf names every host (a "*.example.com" host needs that
// very wildcard in the certificate) and that it is valid now. Errors say
// which check failed and never quote the PEM.
func ParseCertificate(certPEM, keyPEM string, hosts []string) (*tls.Certificate, error) {
	return parseCertificate(certPEM, keyPEM, hosts, true)
}

// parseCertificate is ParseCertificate; without checkTime an expired
// certificate passes (a restored route keeps serving what it served).
func parseCertificate(certPEM, keyPEM string, hosts []string, checkTime bool) (*tls.Certificate, error) {
	if strings.TrimSpace(certPEM) == "" || strings.TrimSpace(keyPEM) == "" {
		return nil, errors.New("custom certificate: both the certificate and the private key are needed")
	}
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("custom certificate: %s", describeKeyPairError(err))
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("custom certificate: parse the leaf: %w", err)
	}
	pair.Leaf = leaf
	now := time.Now()
	switch {
	case !checkTime:
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("custom certificate (serial %s) expired on %s", leaf.SerialNumber.Text(16), leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("custom certificate (serial %s) is not valid before %s", leaf.SerialNumber.Text(16), leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for _, h := range hosts {
		if err := leaf.VerifyHostname(h); err != nil {
			return nil, fmt.Errorf("custom certificate (serial %s, for %s) does not cover host %q", leaf.SerialNumber.Text(16), strings.Join(certNames(leaf), ", "), h)
		}
	}
	return &pair, nil
}

// describeKeyPairError rewords crypto/tls's key pair errors, which never
// hold the PEM.
func describeKeyPairError(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "private key does not match public key"):
		return "the private key does not belong to the certificate"
	case strings.Contains(msg, "failed to find any PEM data in certificate"), strings.Contains(msg, "failed to find certificate PEM data"):
		return "no PEM CERTIFICATE block in the certificate"
	case strings.Contains(msg, "failed to find any PEM data in key"), strings.Contains(msg, "failed to find PEM block with type ending in \"PRIVATE KEY\""):
		return "no PEM PRIVATE KEY block in the private key"
	}
	return strings.TrimPrefix(msg, "tls: ")
}

func certNames(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, "CN "+c.Subject.CommonName)
	}
	return names
}

func certInfo(c *tls.Certificate) *CertificateInfo {
	if c == nil || c.Leaf == nil {
		return nil
	}
	sum := sha256.Sum256(c.Leaf.Raw)
	return &CertificateInfo{Serial: c.Leaf.SerialNumber.Text(16), SHA256: hex.EncodeToString(sum[:]), Names: certNames(c.Leaf), NotAfter: c.Leaf.NotAfter}
}

// certFor is the custom certificate served for an SNI name: an exact
// host's, else its *.parent wildcard's.
func (t *table) certFor(name string) *tls.Certificate {
	if c := t.certs[name]; c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return t.certs["*."+name[i+1:]]
	}
	return nil
}

// tlsDir holds the custom certificates of the saved routes.
func tlsDir(dir string) string { return filepath.Join(dir, "tls") }

// certFileName names a custom certificate's file by its content, so that a
// new certificate never overwrites one the saved routes still name.
func certFileName(req DeployRequest) string {
	sum := sha256.Sum256([]byte(req.TLSCertificate + "\x00" + req.TLSKey))
	return hex.EncodeToString(sum[:16]) + ".pem"
}

// writeCert stores a route's certificate and key (mode 0600) unless the
// file is there already, and returns its name.
func writeCert(stateDir string, req DeployRequest) (string, error) {
	dir := tlsDir(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("make %s: %w", dir, err)
	}
	name := certFileName(req)
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err == nil {
		return name, nil
	}
	data := strings.TrimRight(req.TLSCertificate, "\n") + "\n" + strings.TrimRight(req.TLSKey, "\n") + "\n"
	if err := writeFileAtomic(p, []byte(data), 0o600); err != nil {
		return "", fmt.Errorf("save the certificate of %s: %w", req.Service, err)
	}
	return name, nil
}

// readCert reads a file writeCert made back into the certificate PEM (every
// CERTIFICATE block, in order) and the key PEM.
func readCert(stateDir, name string) (certPEM, keyPEM string, err error) {
	if name != filepath.Base(name) || !strings.HasSuffix(name, ".pem") {
		return "", "", fmt.Errorf("certificate file %q is not a name in %s", name, tlsDir(stateDir))
	}
	data, err := os.ReadFile(filepath.Join(tlsDir(stateDir), name))
	if err != nil {
		return "", "", err
	}
	var certs, key strings.Builder
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			certs.Write(pem.EncodeToMemory(b))
		} else if strings.HasSuffix(b.Type, "PRIVATE KEY") && key.Len() == 0 {
			key.Write(pem.EncodeToMemory(b))
		}
	}
	return certs.String(), key.String(), nil
}

// pruneCerts removes the certificate files no saved route names.
func pruneCerts(stateDir string, keep map[string]bool) {
	ents, err := os.ReadDir(tlsDir(stateDir))
	if err != nil {
		return
	}
	for _, e := range ents {
		if !keep[e.Name()] && strings.HasSuffix(e.Name(), ".pem") {
			_ = os.Remove(filepath.Join(tlsDir(stateDir), e.Name()))
		}
	}
}
