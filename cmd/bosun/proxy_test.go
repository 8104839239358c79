package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testutil"
)

func proxyEnv(vars map[string]string, stdout, stderr io.Writer) env {
	return env{getenv: func(k string) string { return vars[k] }, stdin: strings.NewReader(""), stdout: stdout, stderr: stderr}
}

// startProxyCLI runs `bosun proxy run` in-process on port-0 listeners and
// returns the HTTP and control addresses it logged.
func startProxyCLI(t *testing.T, vars map[string]string, extra ...string) (httpAddr, controlAddr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testutil.SyncBuffer
	args := append([]string{"proxy", "run", "--http", "127.0.0.1:0", "--https", "", "--control", "127.0.0.1:0"}, extra...)
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, proxyEnv(vars, &stdout, &stderr)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("proxy run exited %d: %s", code, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("proxy run did not stop")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var addrs []string
		for _, line := range strings.Split(stderr.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addrs = append(addrs, rec.Addr)
			}
		}
		if len(addrs) == 2 {
			return addrs[0], addrs[1]
		}
		select {
		case code := <-done:
			t.Fatalf("proxy run exited %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy run did not listen within 10s: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the log for the listen lines
	}
}

func runProxyCLI(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, proxyEnv(vars, &stdout, &stderr))
	return code, stdout.String(), stderr.String()
}

func proxyTestTarget(t *testing.T, name string, healthy bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/up" && !healthy {
			http.Error(w, "booting", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestProxy_CLI(t *testing.T) {
	state := t.TempDir()
	vars := map[string]string{"BOSUN_PROXY_TOKEN": "cli-test-token"}
	httpAddr, control := startProxyCLI(t, vars, "--state", state)
	vars["BOSUN_PROXY_CONTROL"] = control
	a, bad := proxyTestTarget(t, "A", true), proxyTestTarget(t, "BAD", false)

	code, out, errOut := runProxyCLI(t, vars, "proxy", "deploy", "web", "--target", a, "--host", "app.test", "--health-interval", "100ms")
	if code != 0 {
		t.Fatalf("deploy exited %d: %s", code, errOut)
	}
	if !strings.Contains(out, "web now served by "+a) {
		t.Fatalf("deploy said %q", out)
	}
	get := func() string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/", nil)
		req.Host = "app.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "A" {
		t.Fatalf("through the proxy: %q, want A", got)
	}

	start := time.Now()
	code, _, errOut = runProxyCLI(t, vars, "proxy", "deploy", "web", "--target", bad, "--host", "app.test", "--deploy-timeout", "1s", "--health-interval", "100ms")
	if code == 0 {
		t.Fatal("deploy to a never-healthy target exited 0")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("failed deploy took %s, deploy timeout 1s", took)
	}
	if !strings.Contains(errOut, "did not become healthy") || !strings.Contains(errOut, "503") {
		t.Fatalf("error does not say why: %s", errOut)
	}
	if got := get(); got != "A" {
		t.Fatalf("after the failed deploy: %q, want A", got)
	}

	code, out, _ = runProxyCLI(t, vars, "proxy", "list")
	if code != 0 || !strings.Contains(out, "web") || !strings.Contains(out, a) || !strings.Contains(out, "healthy") {
		t.Fatalf("list exited %d: %s", code, out)
	}
	code, _, errOut = runProxyCLI(t, map[string]string{"BOSUN_PROXY_CONTROL": control, "BOSUN_PROXY_TOKEN": "wrong"}, "proxy", "list")
	if code == 0 || !strings.Contains(errOut, "401") {
		t.Fatalf("list with a wrong token exited %d: %s", code, errOut)
	}
	code, _, errOut = runProxyCLI(t, vars, "proxy", "remove", "web")
	if code != 0 {
		t.Fatalf("remove exited %d: %s", code, errOut)
	}
	code, out, _ = runProxyCLI(t, vars, "proxy", "list", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after remove exited %d: %q", code, out)
	}
}

func TestProxy_TokenFileMadeOnFirstStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state", "control-token")
	_, control := startProxyCLI(t, map[string]string{}, "--state", filepath.Dir(file), "--token-file", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(data))
	if len(token) != 64 {
		t.Fatalf("token %q", token)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", fi.Mode())
	}
	code, _, errOut := runProxyCLI(t, map[string]string{"BOSUN_PROXY_CONTROL": control, "BOSUN_PROXY_TOKEN": token}, "proxy", "list")
	if code != 0 {
		t.Fatalf("list with the generated token exited %d: %s", code, errOut)
	}
}

func TestProxy_RunNeedsToken(t *testing.T) {
	code, _, errOut := runProxyCLI(t, map[string]string{}, "proxy", "run", "--http", "127.0.0.1:0", "--https", "", "--control", "127.0.0.1:0", "--state", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "no control token") {
		t.Fatalf("exited %d: %s", code, errOut)
	}
}

func TestProxy_AccessLogWriter(t *testing.T) {
	var out testutil.SyncBuffer
	f := newFlushWriter(&out, time.Hour, nil) // only size and Close flush
	var want strings.Builder
	for i := range 5000 {
		line := fmt.Sprintf("{\"n\":%d}\n", i)
		want.WriteString(line)
		if _, err := f.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Fatalf("wrote %d bytes, want %d, in order", len(out.String()), want.Len())
	}
}

// TestProxy_CLICustomCertificate: proxy deploy reads a custom certificate
// and its key from files; proxy list shows its serial, never the PEM; a
// key of another certificate is refused and the route stays.
func TestProxy_CLICustomCertificate(t *testing.T) {
	vars := map[string]string{"BOSUN_PROXY_TOKEN": "cli-test-token"}
	_, control := startProxyCLI(t, vars, "--state", t.TempDir(), "--tls-local-ca", t.TempDir())
	vars["BOSUN_PROXY_CONTROL"] = control
	a := proxyTestTarget(t, "A", true)
	dir := t.TempDir()
	writeCert := func(name string) (certFile, keyFile string, serial *big.Int) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		serial = big.NewInt(time.Now().UnixNano())
		tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "app.test"}, DNSNames: []string{"app.test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			t.Fatal(err)
		}
		return certFile, keyFile, serial
	}
	crt, key, serial := writeCert("one")
	code, _, errOut := runProxyCLI(t, vars, "proxy", "deploy", "web", "--target", a, "--host", "app.test", "--tls", "--tls-certificate", crt, "--tls-key", key, "--health-interval", "100ms")
	if code != 0 {
		t.Fatalf("deploy exited %d: %s", code, errOut)
	}
	code, out, _ := runProxyCLI(t, vars, "proxy", "list", "--json")
	if code != 0 || !strings.Contains(out, `"serial": "`+serial.Text(16)+`"`) || strings.Contains(out, "BEGIN") {
		t.Fatalf("list exited %d, want the serial %x and no PEM: %s", code, serial, out)
	}
	_, otherKey, _ := writeCert("two")
	code, _, errOut = runProxyCLI(t, vars, "proxy", "deploy", "web", "--target", a, "--host", "app.test", "--tls", "--tls-certificate", crt, "--tls-key", otherKey)
	if code == 0 || !strings.Contains(errOut, "the private key does not belong to the certificate") {
		t.Fatalf("deploy with another certificate's key exited %d: %s", code, errOut)
	}
	if code, _, errOut = runProxyCLI(t, vars, "proxy", "deploy", "web", "--target", a, "--tls-certificate", crt); code == 0 || !strings.Contains(errOut, "go together") {
		t.Fatalf("deploy with a certificate and no key exited %d: %s", code, errOut)
	}
}
