package daemon

import (
	"strings"
	"testing"
	"time"
)

const goodConfig = `
listen: 127.0.0.1:8080
state: sqlite:///var/lib/bosun/state.db
ssh: {key: /etc/bosun/id_ed25519, known_hosts: /etc/bosun/known_hosts, concurrency: 64}
webhook: {secret_env: BOSUN_WEBHOOK_SECRET}
forge: {kind: github, base_url: https://api.github.com/, token_env: GITHUB_TOKEN}
repos:
  - name: fleet
    url: git@github.com:acme/fleet.git
    branch: main
    path: .
    poll: 1m
    forge_repo: acme/fleet
`

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Repos[0].ForgeRepo != "acme/fleet" || time.Duration(cfg.Repos[0].Poll) != time.Minute || cfg.SSH.Key != "/etc/bosun/id_ed25519" || cfg.SSH.Concurrency != 64 {
		t.Errorf("config = %+v", cfg)
	}

	minimal, err := ParseConfig(strings.NewReader("webhook: {secret_file: /run/secret}\nrepos: [{name: fleet, url: /srv/fleet}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := minimal.Repos[0]
	if r.Branch != "main" || r.Path != "." || time.Duration(r.Poll) != DefaultPoll || minimal.State != "sqlite:bosun-data/state.db" || minimal.Forge.Kind != "none" {
		t.Errorf("defaults not applied: %+v", minimal)
	}
}

func TestParseConfig_errors(t *testing.T) {
	for _, tc := range []struct{ name, edit, want string }{
		{"unknown key", "listen: 127.0.0.1:8080\nlisten_addr: x\n", "listen_addr"},
		{"bad listen", "listen: 8080\n", "listen"},
		{"bad state", "state: mysql://x\n", "state"},
		{"password in DSN", "state: postgres://bosun:hunter2@db/bosun\n", "password"},
		{"no webhook secret", "webhook: {}\n", "secret_env or secret_file"},
		{"bad forge kind", "forge: {kind: gitlab, token_env: T}\n", "forge.kind"},
		{"forge without auth", "forge: {kind: github}\n", "token_env"},
		{"half an app", "forge: {kind: github, app_id: 3}\n", "installation_id"},
		{"token in repo URL", "repos: [{name: fleet, url: 'https://ghp_abc@github.com/acme/fleet.git'}]\n", "credentials"},
		{"bad repo name", "repos: [{name: 'Fleet!', url: /srv/x}]\n", "name"},
		{"duplicate repo", "repos: [{name: a, url: /x}, {name: a, url: /y}]\n", "used twice"},
		{"short poll", "repos: [{name: a, url: /x, poll: 1s}]\n", "too short"},
		{"bad poll", "repos: [{name: a, url: /x, poll: soon}]\n", "not a duration"},
		{"path escapes", "repos: [{name: a, url: /x, path: ../etc}]\n", "path"},
		{"bad forge repo", "repos: [{name: a, url: /x, forge_repo: acme}]\n", "forge_repo"},
		{"no repos", "repos: []\n", "at least one"},
		{"negative concurrency", "ssh: {key: /k, concurrency: -1}\n", "ssh.concurrency"},
		{"webhook secret as a service secret", "webhook: {secret_env: BOSUN_WEBHOOK_SECRET}\nsecrets: {env: [BOSUN_WEBHOOK_SECRET]}\n", "the daemon's own credential (webhook.secret_env)"},
		{"prefix covering the forge token", "forge: {kind: github, token_env: GITHUB_TOKEN}\nsecrets: {env_prefix: GITHUB_}\n", "covers GITHUB_TOKEN"},
		{"a Gitea API root", "forge: {kind: github, base_url: 'https://gitea.example.com/api/v1/', token_env: T}\n", "Gitea is not supported"},
		{"an API root go-github would rewrite", "forge: {kind: github, base_url: 'https://git.example.com/forge/', token_env: T}\n", "not a GitHub API root"},
		{"bad secrets env name", "secrets: {env: [\"A-B\"]}\n", "secrets.env"},
		{"bad destination", "repos: [{name: a, url: /x, destination: ../prod}]\n", "destination"},
		{"bad erb_env name", "repos: [{name: a, url: /x, erb_env: [\"A B\"]}]\n", "erb_env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Later keys of a YAML mapping may not repeat earlier ones, so
			// build the file from the good one minus the keys the case sets.
			var kept []string
			skip := false
			edited := map[string]bool{}
			for _, l := range strings.Split(tc.edit, "\n") {
				if k, _, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, " ") {
					edited[k] = true
				}
			}
			for _, l := range strings.Split(goodConfig, "\n") {
				if !strings.HasPrefix(l, " ") {
					k, _, _ := strings.Cut(l, ":")
					skip = edited[k]
				}
				if !skip {
					kept = append(kept, l)
				}
			}
			_, err := ParseConfig(strings.NewReader(strings.Join(kept, "\n") + "\n" + tc.edit))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "ghp_abc") {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
}

func TestExampleConfig(t *testing.T) {
	if _, err := LoadConfig("../examples/bosun.yaml"); err != nil {
		t.Fatalf("examples/bosun.yaml: %v", err)
	}
}

func TestParseConfig_dashboard(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(goodConfig + `
dashboard:
  listen: 127.0.0.1:8081
  base_url: https://bosun.example.com
  public_read: true
  github: {client_id: Iv1.abc, client_secret_env: BOSUN_OAUTH_SECRET, web_url: https://ghe.example.com, api_url: https://ghe.example.com/api/v3/}
  roles:
    - {org: acme, role: viewer}
    - {org: acme, team: ops, role: deployer}
    - {user: alice, role: admin}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Dashboard
	if d.Listen != "127.0.0.1:8081" || !d.PublicRead || d.GitHub.ClientID != "Iv1.abc" || d.GitHub.APIURL != "https://ghe.example.com/api/v3/" || len(d.Roles) != 3 || d.Roles[1].Team != "ops" || d.Roles[1].Role.String() != "deployer" || d.Roles[2].Role.String() != "admin" {
		t.Errorf("dashboard = %+v", d)
	}
	for want, extra := range map[string]string{
		"role \"root\" is not viewer":                                      "dashboard:\n  roles: [{org: acme, role: root}]\n",
		"dashboard.base_url: needed":                                       "dashboard:\n  github: {client_id: x, client_secret_env: S}\n  roles: [{org: acme, role: viewer}]\n",
		"the daemon's listen address":                                      "dashboard: {listen: '127.0.0.1:8080'}\n",
		"field secret not found":                                           "dashboard:\n  github: {secret: plain}\n",
		"the daemon's own credential (dashboard.github.client_secret_env)": "secrets: {env: [OAUTH]}\ndashboard:\n  base_url: https://b.example.com\n  github: {client_id: x, client_secret_env: OAUTH}\n  roles: [{org: acme, role: viewer}]\n",
	} {
		if _, err := ParseConfig(strings.NewReader(goodConfig + extra)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want an error containing %q, got %v", strings.TrimSpace(extra), want, err)
		}
	}
}
