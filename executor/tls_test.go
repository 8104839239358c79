package executor

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
)

// customCert is a self-signed certificate for names: its PEMs and serial.
func customCert(t *testing.T, names ...string) (certPEM, keyPEM string, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(0, 1, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: names, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})), serial
}

// pemBody is the base64 of a PEM block, the part that must not leak.
func pemBody(s string) string {
	b, _ := pem.Decode([]byte(s))
	return strings.Split(strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: b.Bytes}))), "\n")[1]
}

// servedCert makes a TLS handshake with the server's proxy for SNI name.
func servedCert(t *testing.T, addr, name string) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with %s for %s: %v", addr, name, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// TestApply_CustomCertificate deploys a role with Kamal's proxy.ssl
// {certificate_pem, private_key_pem} on a test server: the proxy serves
// that certificate for the host (SNI), after a proxy restart too, with the
// key in a 0600 file on the proxy's volume; neither PEM is in a log, the
// plan, the store or the server's process list. A certificate that does
// not cover the host fails before the host is touched.
func TestApply_CustomCertificate(t *testing.T) {
	en := newBedEnv(t, 1)
	s := en.bed.Servers[0]
	const host = "shop.example.test"
	certPEM, keyPEM, serial := customCert(t, host)
	secrets := secretSource{"SHOP_CERT": certPEM, "SHOP_KEY": keyPEM}
	ex := en.newExecutor(func(c *Config) { c.Secrets = secrets })

	spec := webSpec(en.bed.PushApp(t, "shop", "v1", testbed.AppOK))
	spec.Service = "shop"
	spec.Proxy.Hosts, spec.Proxy.SSL = []string{host}, true
	spec.Proxy.Certificate = &planner.ProxyCertificate{
		CertificatePEM: planner.SecretRef{Name: "SHOP_CERT", Hash: "hmac-sha256:01"},
		PrivateKeyPEM:  planner.SecretRef{Name: "SHOP_KEY", Hash: "hmac-sha256:02"},
	}
	pl := en.plan(spec, planner.Service{})
	if _, err := ex.Apply(t.Context(), pl, ApplyOpts{Trigger: "test"}); err != nil {
		t.Fatalf("apply: %v\n%s", err, en.out.String())
	}
	if got := servedCert(t, s.HTTPSAddr, host).SerialNumber; got.Cmp(serial) != 0 {
		t.Fatalf("served serial %x for %s, want the custom certificate's %x", got, host, serial)
	}
	// A client that trusts only that certificate reaches the app.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(certPEM))
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, s.HTTPSAddr)
		},
	}}
	resp, err := hc.Get("https://" + host + "/")
	if err != nil {
		t.Fatalf("GET https://%s/: %v", host, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "v1 ") {
		t.Fatalf("GET https://%s/: %s %q", host, resp.Status, body)
	}

	// The key is on the proxy's volume, 0600; the routes file holds none.
	if perm := strings.TrimSpace(s.Exec(t, "sh", "-c", "stat -c %a /var/lib/docker/volumes/"+ProxyVolume+"/_data/tls/*.pem")); perm != "600" {
		t.Errorf("certificate file mode %s, want 600", perm)
	}
	// A restarted proxy serves it from there.
	s.Exec(t, "docker", "restart", ProxyContainer)
	var got *big.Int
	for i := 0; i < 100; i++ {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", s.HTTPSAddr, &tls.Config{ServerName: host, InsecureSkipVerify: true})
		if err == nil {
			got = c.ConnectionState().PeerCertificates[0].SerialNumber
			c.Close()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got == nil || got.Cmp(serial) != 0 {
		t.Fatalf("after a proxy restart the served serial is %v, want %x", got, serial)
	}

	var planText bytes.Buffer
	if _, err := pl.WriteTo(&planText); err != nil {
		t.Fatal(err)
	}
	logs := s.Exec(t, "sh", "-c", "docker logs "+ProxyContainer+" 2>&1; cat /var/lib/docker/volumes/"+ProxyVolume+"/_data/routes.json")
	for what, v := range map[string]string{"private key": pemBody(keyPEM), "certificate": pemBody(certPEM)} {
		en.expectNowhere(t, what, v)
		if strings.Contains(planText.String(), v) {
			t.Errorf("%s in the plan", what)
		}
		if strings.Contains(logs, v) {
			t.Errorf("%s in the proxy's log or routes.json", what)
		}
	}

	// A renewed certificate that does not name the host: refused before
	// the host changes; the old container and certificate keep serving.
	otherPEM, otherKey, _ := customCert(t, "elsewhere.example.test")
	secrets["SHOP_CERT"], secrets["SHOP_KEY"] = otherPEM, otherKey
	spec2 := *spec
	p2 := *spec.Proxy
	p2.Certificate = &planner.ProxyCertificate{
		CertificatePEM: planner.SecretRef{Name: "SHOP_CERT", Hash: "hmac-sha256:03"},
		PrivateKeyPEM:  planner.SecretRef{Name: "SHOP_KEY", Hash: "hmac-sha256:04"},
	}
	spec2.Proxy = &p2
	_, err = ex.Apply(t.Context(), en.plan(&spec2, planner.Service{}), ApplyOpts{Trigger: "test"})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("does not cover host %q", host)) {
		t.Fatalf("apply with a certificate for another host: %v; want it refused for not covering %s", err, host)
	}
	if n := strings.Count(strings.TrimSpace(s.Exec(t, "docker", "ps", "-aq", "--filter", "label="+LabelService+"=shop")), "\n"); n != 0 {
		t.Errorf("a second container of shop was made (%d more)", n)
	}
	if got := servedCert(t, s.HTTPSAddr, host).SerialNumber; got.Cmp(serial) != 0 {
		t.Errorf("after the refused deploy the served serial is %x, want %x", got, serial)
	}
	for what, v := range map[string]string{"other key": pemBody(otherKey)} {
		en.expectNowhere(t, what, v)
	}
}
