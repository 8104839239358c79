package testbed_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/bosunhq/bosun/internal/testbed"
)

// sshRun runs one command over an SSH session and returns its stdout.
func sshRun(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	sess, err := c.NewSession()
	require.NoError(t, err)
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	require.NoError(t, sess.Run(cmd), "ssh %q: %s", cmd, stderr.String())
	return strings.TrimSpace(stdout.String())
}

func TestStart(t *testing.T) {
	var run string
	// Registered before Start, so it runs after the bed's own cleanup.
	t.Cleanup(func() {
		if run == "" {
			return
		}
		for _, what := range [][]string{{"ps", "-aq"}, {"network", "ls", "-q"}} {
			out, err := dockerOut(append(what, "--filter", "label="+testbed.LabelRun+"="+run)...)
			if assert.NoError(t, err, "list leftovers") {
				assert.Empty(t, out, "docker %s: leftovers after cleanup", what[0])
			}
		}
	})
	bed := testbed.Start(t, testbed.Options{Servers: 2})
	run = bed.RunID
	t.Logf("2 servers started in %s", bed.StartTime)
	require.Len(t, bed.Servers, 2)
	ref := bed.PushApp(t, "app", "v1", testbed.AppOK)
	require.Equal(t, bed.Registry+"/app:v1", ref)

	hostKeys, err := knownhosts.New(bed.KnownHostsPath)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i, s := range bed.Servers {
		require.Equal(t, "server-"+string(rune('1'+i)), s.Name)
		require.True(t, strings.HasPrefix(s.SSHAddr, "127.0.0.1:"), s.SSHAddr)
		require.True(t, strings.HasPrefix(s.HTTPAddr, "127.0.0.1:"), s.HTTPAddr)
		require.True(t, strings.HasPrefix(s.HTTPSAddr, "127.0.0.1:"), s.HTTPSAddr)
		wg.Go(func() {
			c, err := ssh.Dial("tcp", s.SSHAddr, &ssh.ClientConfig{
				User:              "root",
				Auth:              []ssh.AuthMethod{ssh.PublicKeys(bed.Signer)},
				HostKeyCallback:   hostKeys,
				HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
				Timeout:           10 * time.Second,
			})
			if !assert.NoError(t, err, "ssh to %s", s.Name) {
				return
			}
			defer c.Close()
			sess, err := c.NewSession()
			if !assert.NoError(t, err, "session on %s", s.Name) {
				return
			}
			out, err := sess.Output("hostname && docker version --format '{{.Server.APIVersion}}'")
			sess.Close()
			if assert.NoError(t, err, "docker version on %s", s.Name) {
				require.Equal(t, s.Name+"\n1.41\n", string(out))
			}
		})
	}
	wg.Wait()

	t.Run("servers have their own host keys", func(t *testing.T) {
		require.NotEqual(t, bed.Servers[0].HostKey, bed.Servers[1].HostKey)
	})

	t.Run("a wrong host key is refused", func(t *testing.T) {
		other, err := knownhosts.New(bed.KnownHostsPath)
		require.NoError(t, err)
		// server-2's key presented for server-1's address must not pass.
		_, err = ssh.Dial("tcp", bed.Servers[0].SSHAddr, &ssh.ClientConfig{
			User: "root",
			Auth: []ssh.AuthMethod{ssh.PublicKeys(bed.Signer)},
			HostKeyCallback: func(host string, remote netAddr, key ssh.PublicKey) error {
				k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(bed.Servers[1].HostKey))
				require.NoError(t, err)
				return other(host, remote, k)
			},
			HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
			Timeout:           10 * time.Second,
		})
		require.ErrorContains(t, err, "key mismatch")
	})

	t.Run("server pulls and runs the app from the registry", func(t *testing.T) {
		s := bed.Servers[0]
		c, err := s.Dial(t.Context())
		require.NoError(t, err)
		defer c.Close()
		sshRun(t, c, "docker pull "+ref)
		sshRun(t, c, "docker run -d --name app -p 80:80 "+ref)
		// The app answers once it listens; poll inside the server.
		out := sshRun(t, c, `timeout 30 sh -c 'until curl -fsS http://127.0.0.1/up; do sleep 0.1; done'`)
		require.Equal(t, "ok", out)
		require.True(t, strings.HasPrefix(sshRun(t, c, "curl -fsS -X POST http://127.0.0.1/"), "v1 "))

		// From the host, through the server's published port 80.
		resp, err := http.Get("http://" + s.HTTPAddr + "/")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "v1", resp.Header.Get("X-App-Version"))
		require.True(t, strings.HasPrefix(string(body), "v1 "), string(body))
	})

	t.Run("exec and ssh controls", func(t *testing.T) {
		s := bed.Servers[1]
		require.Equal(t, "server-2", s.Exec(t, "hostname"))
		s.StopSSH(t)
		_, err := s.Dial(t.Context())
		require.Error(t, err, "ssh must fail with sshd stopped")
		s.StartSSH(t)
		c, err := s.Dial(t.Context())
		require.NoError(t, err, "ssh after StartSSH (same host key)")
		c.Close()
	})

	t.Run("pause makes the server hang", func(t *testing.T) {
		s := bed.Servers[1]
		s.Pause(t)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := s.Dial(ctx)
		require.Error(t, err, "ssh must not answer while paused")
		s.Unpause(t)
		c, err := s.Dial(t.Context())
		require.NoError(t, err)
		c.Close()
	})

	t.Run("a container paused inside a server does not keep the bed from closing", func(t *testing.T) {
		// A frozen process cannot die: without thawing it first, killing
		// the server hangs ("did not receive an exit event") and the
		// leftover check above fails. An app's warm standby is one.
		bed.Servers[0].Exec(t, "docker", "pause", "app")
	})
}

func TestImages(t *testing.T) {
	bed := testbed.Start(t, testbed.Options{Servers: 1})
	s := bed.Servers[0]
	c, err := s.Dial(t.Context())
	require.NoError(t, err)
	defer c.Close()

	unhealthy := bed.PushApp(t, "app", "v2-bad", testbed.AppUnhealthy)
	sshRun(t, c, "docker run -d --name bad -p 127.0.0.1:8081:80 "+unhealthy)
	code := sshRun(t, c, `timeout 30 sh -c 'while :; do c=$(curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:8081/up); [ "$c" != 000 ] && { echo "$c"; exit; }; sleep 0.1; done'`)
	require.Equal(t, "500", code)

	crash := bed.PushApp(t, "app", "v3-crash", testbed.AppCrash)
	sshRun(t, c, "docker run --name crash "+crash+" || true")
	require.Equal(t, "1", sshRun(t, c, "docker inspect -f '{{.State.ExitCode}}' crash"))
	require.Contains(t, sshRun(t, c, "docker logs crash 2>&1"), "crashing at start")

	_, err = bed.PushAppContext(t.Context(), "Bad Name", "v1", testbed.AppOK)
	require.Error(t, err)

	proxy := bed.PushProxy(t)
	require.Equal(t, bed.Registry+"/bosun-proxy:test", proxy)
	require.Contains(t, sshRun(t, c, "docker run --rm "+proxy+" version"), "bosun")
}

func BenchmarkStart(b *testing.B) {
	testbed.RequireDocker(b)
	for b.Loop() {
		bed, err := testbed.Launch(b.Context(), testbed.Options{Servers: 2, Logf: b.Logf})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := bed.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
