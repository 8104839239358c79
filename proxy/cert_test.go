package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testCert is a self-signed certificate for names with its PEMs.
type testCert struct {
	certPEM, keyPEM string
	serial          *big.Int
}

func makeCert(t testing.TB, notAfter time.Time, names ...string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial := randomSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: names, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return testCert{
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		serial:  serial,
	}
}

// servedSerial makes a TLS handshake with the proxy for SNI name and
// returns the serial of the leaf it served.
func servedSerial(t testing.TB, addr, name string) (*big.Int, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// TestServer_CustomCertificate: a route's custom certificate is served by
// SNI for its hosts (a wildcard included) while other TLS hosts get the
// local CA's; it survives a restart from the state dir, where its key is in
// a 0600 file of its own; the control API lists only its description; a bad
// certificate is refused before the switch and the route stays as it was.
func TestServer_CustomCertificate(t *testing.T) {
	state, caDir := t.TempDir(), t.TempDir()
	h := startProxy(t, Config{LocalCADir: caDir, StateDir: state})
	a, b := newBackend(t, "A"), newBackend(t, "B")
	cert := makeCert(t, time.Now().AddDate(0, 1, 0), "app.test", "*.wild.test")
	req := deployReq("web", a, "app.test", "*.wild.test")
	req.TLS, req.TLSCertificate, req.TLSKey = true, cert.certPEM, cert.keyPEM
	route := mustDeploy(t, h, req)
	other := deployReq("other", b, "other.test")
	other.TLS = true
	mustDeploy(t, h, other)

	for _, name := range []string{"app.test", "x.wild.test"} {
		got, err := servedSerial(t, h.httpsAddr, name)
		require.NoError(t, err, name)
		require.Zero(t, cert.serial.Cmp(got), "SNI %s: served serial %x, want the custom certificate's %x", name, got, cert.serial)
	}
	got, err := servedSerial(t, h.httpsAddr, "other.test")
	require.NoError(t, err)
	require.NotZero(t, cert.serial.Cmp(got), "other.test must get the local CA's certificate")

	// A client that trusts only the custom certificate reaches the app.
	c := tlsClient(t, []byte(cert.certPEM), h.httpsAddr)
	resp, err := c.Get("https://app.test/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	// Listed by its description only.
	require.NotNil(t, route.Certificate)
	require.Equal(t, cert.serial.Text(16), route.Certificate.Serial)
	require.Empty(t, route.TLSCertificate+route.TLSKey)
	routes, err := h.client.List(context.Background())
	require.NoError(t, err)
	js, err := json.Marshal(routes)
	require.NoError(t, err)
	require.NotContains(t, string(js), "BEGIN")

	// Refused before the switch, naming what is wrong; the route stays.
	wrongKey := makeCert(t, time.Now().AddDate(0, 1, 0), "app.test")
	elsewhere := makeCert(t, time.Now().AddDate(0, 1, 0), "else.test", "*.wild.test")
	expired := makeCert(t, time.Now().Add(-time.Minute), "app.test", "*.wild.test")
	for _, bad := range []struct {
		name, cert, key, want string
	}{
		{"key of another certificate", cert.certPEM, wrongKey.keyPEM, "the private key does not belong to the certificate"},
		{"host not covered", elsewhere.certPEM, elsewhere.keyPEM, "does not cover host \"app.test\""},
		{"expired", expired.certPEM, expired.keyPEM, "expired on"},
		{"no key", cert.certPEM, "", "both the certificate and the private key are needed"},
	} {
		r := deployReq("web", b, "app.test", "*.wild.test")
		r.TLS, r.TLSCertificate, r.TLSKey = true, bad.cert, bad.key
		_, err := h.client.Deploy(context.Background(), r)
		require.Error(t, err, bad.name)
		require.Contains(t, err.Error(), bad.want, bad.name)
		require.NotContains(t, err.Error(), "BEGIN", bad.name)
	}
	_, err = h.client.Deploy(context.Background(), DeployRequest{Service: "x", Target: b.addr, Hosts: []string{"x.test"}, TLSCertificate: cert.certPEM, TLSKey: cert.keyPEM})
	require.ErrorContains(t, err, "a custom certificate needs tls")
	got, err = servedSerial(t, h.httpsAddr, "app.test")
	require.NoError(t, err)
	require.Zero(t, cert.serial.Cmp(got), "a refused deploy changed the certificate")

	// A restart serves the same certificate from the state dir; the key is
	// in a 0600 file, not in routes.json.
	h.stop()
	routesJSON, err := os.ReadFile(filepath.Join(state, "routes.json"))
	require.NoError(t, err)
	require.NotContains(t, string(routesJSON), "PRIVATE KEY")
	files, err := os.ReadDir(filepath.Join(state, "tls"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	fi, err := files[0].Info()
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	h2 := startProxy(t, Config{LocalCADir: caDir, StateDir: state})
	got, err = servedSerial(t, h2.httpsAddr, "app.test")
	require.NoError(t, err)
	require.Zero(t, cert.serial.Cmp(got), "after a restart")

	// A renewed certificate replaces the old one, whose file goes.
	renewed := makeCert(t, time.Now().AddDate(0, 2, 0), "app.test", "*.wild.test")
	req.TLSCertificate, req.TLSKey = renewed.certPEM, renewed.keyPEM
	mustDeploy(t, h2, req)
	got, err = servedSerial(t, h2.httpsAddr, "app.test")
	require.NoError(t, err)
	require.Zero(t, renewed.serial.Cmp(got), "after the renewal")
	files, err = os.ReadDir(filepath.Join(state, "tls"))
	require.NoError(t, err)
	require.Len(t, files, 1, "the old certificate's file is removed")
	require.Equal(t, certFileName(req), files[0].Name())
}

// TestParseCertificate_errorsHoldNoPEM checks the messages of malformed
// input.
func TestParseCertificate_errorsHoldNoPEM(t *testing.T) {
	cert := makeCert(t, time.Now().AddDate(0, 1, 0), "app.test")
	_, err := ParseCertificate("garbage", cert.keyPEM, nil)
	require.ErrorContains(t, err, "no PEM CERTIFICATE block in the certificate")
	_, err = ParseCertificate(cert.certPEM, strings.ReplaceAll(cert.keyPEM, "PRIVATE KEY", "SOMETHING"), nil)
	require.ErrorContains(t, err, "no PEM PRIVATE KEY block")
	require.NotContains(t, err.Error(), "BEGIN")
	var ve *ValidationError
	r := DeployRequest{Service: "web", Target: "a:80", Hosts: []string{"*.x.test"}, TLS: true}.withDefaults()
	require.True(t, errors.As(r.Validate(), &ve))
	require.Contains(t, ve.Msg, "give a custom certificate for it")
}
