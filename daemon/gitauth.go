package daemon

import (
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"github.com/bosunhq/bosun/planner"
)

// GitAuth is the credential for the repository's URL: its SSH key (host
// keys checked against knownHosts, the daemon's ssh.known_hosts), or its
// token over HTTPS; nil when it names neither.
func (rc RepoConfig) GitAuth(knownHosts string, getenv func(string) string) (transport.AuthMethod, error) {
	if rc.SSHKey != "" {
		user := "git"
		if i := strings.Index(rc.URL, "@"); i > 0 && !strings.Contains(rc.URL[:i], "/") {
			user = rc.URL[:i]
		}
		auth, err := gitssh.NewPublicKeysFromFile(user, rc.SSHKey, "")
		if err != nil {
			return nil, fmt.Errorf("ssh_key: %w", err)
		}
		if knownHosts != "" {
			cb, err := gitssh.NewKnownHostsCallback(knownHosts)
			if err != nil {
				return nil, fmt.Errorf("known_hosts: %w", err)
			}
			auth.HostKeyCallback = cb
		}
		return auth, nil
	}
	if rc.GitTokenEnv != "" || rc.GitTokenFile != "" {
		if getenv == nil {
			getenv = func(string) string { return "" }
		}
		token, err := planner.ReadSecret(getenv, rc.GitTokenEnv, rc.GitTokenFile)
		if err != nil {
			return nil, fmt.Errorf("git token: %w", err)
		}
		return &githttp.BasicAuth{Username: "x-access-token", Password: token}, nil
	}
	return nil, nil
}
