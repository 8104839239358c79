package daemon

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

func TestRepoConfig_GitAuth(t *testing.T) {
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GIT_TOKEN": "tok-123456"}
	getenv := func(k string) string { return env[k] }

	t.Run("ssh key, user from the URL, host keys checked", func(t *testing.T) {
		a, err := RepoConfig{URL: "deploy@git.example.com:team/fleet.git", SSHKey: key}.GitAuth(knownHosts, getenv)
		if err != nil {
			t.Fatal(err)
		}
		pk, ok := a.(*gitssh.PublicKeys)
		if !ok {
			t.Fatalf("auth = %T, want *ssh.PublicKeys", a)
		}
		if pk.User != "deploy" {
			t.Errorf("user = %q, want deploy (from the URL)", pk.User)
		}
		if pk.HostKeyCallback == nil {
			t.Error("no host key callback: host keys would not be checked against known_hosts")
		}
		a, err = RepoConfig{URL: "ssh://git.example.com/team/fleet.git", SSHKey: key}.GitAuth(knownHosts, getenv)
		if err != nil {
			t.Fatal(err)
		}
		if u := a.(*gitssh.PublicKeys).User; u != "git" {
			t.Errorf("user = %q, want git (the default)", u)
		}
	})
	t.Run("https token from the environment", func(t *testing.T) {
		a, err := RepoConfig{URL: "https://github.com/team/fleet.git", GitTokenEnv: "GIT_TOKEN"}.GitAuth("", getenv)
		if err != nil {
			t.Fatal(err)
		}
		if ba, ok := a.(*githttp.BasicAuth); !ok || ba.Username != "x-access-token" || ba.Password != "tok-123456" {
			t.Errorf("auth = %#v, want basic auth x-access-token with the token", a)
		}
	})
	t.Run("none", func(t *testing.T) {
		if a, err := (RepoConfig{URL: "/srv/fleet"}).GitAuth(knownHosts, getenv); a != nil || err != nil {
			t.Errorf("auth = %v, %v; want none", a, err)
		}
	})
	for _, tc := range []struct {
		name       string
		rc         RepoConfig
		knownHosts string
		want       string
	}{
		{"missing key file", RepoConfig{URL: "git@h:r", SSHKey: filepath.Join(dir, "nope")}, knownHosts, "ssh_key: "},
		{"missing known_hosts", RepoConfig{URL: "git@h:r", SSHKey: key}, filepath.Join(dir, "nope"), "known_hosts: "},
		{"unset token variable", RepoConfig{URL: "https://h/r", GitTokenEnv: "UNSET"}, "", "git token: environment variable UNSET is empty or not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.rc.GitAuth(tc.knownHosts, getenv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
