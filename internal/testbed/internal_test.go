package testbed

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestServerImage_TagFollowsRecipe(t *testing.T) {
	ref := ServerImage()
	require.Regexp(t, `^bosun-testbed-server:[0-9a-f]{12}$`, ref)
	require.Equal(t, ref, ServerImage(), "same recipe, same tag")

	old := serverRecipe.overlay[0].content
	t.Cleanup(func() { serverRecipe.overlay[0].content = old })
	serverRecipe.overlay[0].content += "# changed\n"
	require.NotEqual(t, ref, ServerImage(), "a changed entrypoint must not reuse the old image")
}

func TestRewriteRootfs(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, f := range []struct{ name, body string }{
		{"./etc/ssh/ssh_host_ed25519_key", "SECRET"},
		{"./etc/ssh/ssh_host_rsa_key.pub", "pub"},
		{"./etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n"},
		{"." + serverEntrypoint, "stale entrypoint"},
	} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o600, Size: int64(len(f.body))}))
		_, err := io.WriteString(tw, f.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())

	var out bytes.Buffer
	require.NoError(t, serverRecipe.rewriteRootfs(&out, &in))
	got := map[string]string{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		_, dup := got[h.Name]
		require.False(t, dup, "duplicate entry %s", h.Name)
		got[h.Name] = string(b)
	}
	require.NotContains(t, got, "./etc/ssh/ssh_host_ed25519_key", "host keys must not be baked in")
	require.NotContains(t, got, "./etc/ssh/ssh_host_rsa_key.pub")
	require.Contains(t, got, "./etc/ssh/sshd_config")
	require.Equal(t, entrypointScript, got["."+serverEntrypoint])
	require.Equal(t, sshdConfig, got["./etc/ssh/sshd_config.d/bosun-testbed.conf"])
}

func TestOverlapsAny(t *testing.T) {
	routes := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"), // the default route overlaps everything; ignored
		netip.MustParsePrefix("10.213.7.0/24"),
		netip.MustParsePrefix("10.0.0.0/8"),
	}
	require.True(t, overlapsAny(netip.MustParsePrefix("10.213.7.0/24"), routes[:2]))
	require.False(t, overlapsAny(netip.MustParsePrefix("10.213.8.0/24"), routes[:2]))
	require.True(t, overlapsAny(netip.MustParsePrefix("10.213.8.0/24"), routes))
	for _, r := range hostRoutes() {
		require.True(t, r.IsValid(), r.String())
	}
}

func TestOwner(t *testing.T) {
	me := ownerID(os.Getpid())
	require.True(t, strings.HasPrefix(me, strings.Split(me, "-")[0]+"-"), me)
	require.True(t, ownerAlive(me))
	pid := strings.Split(me, "-")[0]
	require.False(t, ownerAlive(pid+"-1"), "same pid, other start time: another process")
	require.True(t, ownerAlive("not-an-owner"), "unknown formats are left alone")
}

func TestDebianMirror(t *testing.T) {
	m := debianMirror()
	require.True(t, strings.HasPrefix(m, "http://") || strings.HasPrefix(m, "https://"), m)
	require.True(t, strings.HasSuffix(strings.TrimSuffix(m, "/"), "/debian"), m)
}

func TestLockFile_Exclusive(t *testing.T) {
	if f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644); err != nil {
		t.Skipf("cannot open %s: %v", lockPath, err)
	} else {
		f.Close()
	}
	unlock, err := lockFile(t.Context())
	require.NoError(t, err)
	// flock belongs to the open file, so a second open in this process
	// contends like another test binary would.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = lockFile(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a second holder must wait")
	unlock()
	unlock2, err := lockFile(t.Context())
	require.NoError(t, err, "free again after unlock")
	unlock2()
}

func TestEnsureCommand_FindsWithoutInstalling(t *testing.T) {
	// A program that is there is returned at once: no lock, no apt-get
	// (the context is already cancelled, so either would fail).
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p, err := EnsureCommand(ctx, t.Logf, "sh", "dash")
	require.NoError(t, err)
	require.FileExists(t, p)
	require.Empty(t, lookCommand("bosun-no-such-program"))
	_, err = EnsureCommand(ctx, t.Logf, "bosun-no-such-program", "bosun-no-such-package")
	require.Error(t, err, "a missing program needs the lock and apt-get")
}

func TestFreshRecipe_TagFollowsDockerCLI(t *testing.T) {
	cli := filepath.Join(t.TempDir(), "docker")
	require.NoError(t, os.WriteFile(cli, []byte("cli v1"), 0o755))
	r := freshRecipe(cli)
	ref, err := r.ref()
	require.NoError(t, err)
	require.Regexp(t, `^bosun-testbed-fresh:[0-9a-f]{12}$`, ref)
	require.NotEqual(t, serverRecipe.rootfsPath(), r.rootfsPath())
	require.NoError(t, os.WriteFile(cli, []byte("cli v2"), 0o755))
	ref2, err := freshRecipe(cli).ref()
	require.NoError(t, err)
	require.NotEqual(t, ref, ref2, "another docker CLI must not reuse the image")

	// The CLI is copied in and debootstrap's sources.list replaced.
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	body := "deb http://deb.debian.org/debian bookworm main\n"
	require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "./etc/apt/sources.list", Mode: 0o644, Size: int64(len(body))}))
	_, err = io.WriteString(tw, body)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	var out bytes.Buffer
	require.NoError(t, r.rewriteRootfs(&out, &in))
	got, links := map[string]string{}, map[string]string{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.NotContains(t, got, h.Name, "duplicate entry")
		got[h.Name] = string(b)
		if h.Typeflag == tar.TypeSymlink {
			links[h.Name] = h.Linkname
		}
	}
	require.Equal(t, "cli v2", got["./usr/local/bin/docker"])
	require.NotContains(t, got["./etc/apt/sources.list"], "deb http")
	require.Contains(t, got["./etc/apt/sources.list.d/debian.sources"], "bookworm-security")
	// The host's links to PostgreSQL's binaries are mirrored.
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		target, err := os.Readlink("/usr/local/bin/" + name)
		if err == nil && strings.HasPrefix(target, "/usr/lib/postgresql/") {
			require.Equal(t, target, links["./usr/local/bin/"+name])
		} else {
			require.NotContains(t, got, "./usr/local/bin/"+name)
		}
	}
}

func TestDebianSources(t *testing.T) {
	s := debianSources("http://deb.debian.org/debian/", "bookworm")
	require.Contains(t, s, "URIs: http://deb.debian.org/debian/\nSuites: bookworm bookworm-updates\n")
	require.Contains(t, s, "URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n")
}
