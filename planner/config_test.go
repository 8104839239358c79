package planner_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

const testFleet = `servers:
  web-1: {host: 10.0.0.11, tags: [web]}
  web-2: {host: 10.0.0.12, tags: [web]}
  db-1:  {host: db1.internal.example.com, user: deploy, port: 2222, tags: [db]}
defaults:
  registry: {server: ghcr.io, username: acme, password: [REGISTRY_TOKEN]}
  ssh: {user: root, proxy: "jump@10.0.0.1:2200"}
`

// planFiles plans a repository made of files (fleet.yml defaults to
// testFleet) with the secrets in secrets.
func planFiles(t *testing.T, files map[string]string, secrets map[string]string) (*planner.Plan, planner.ConfigErrors) {
	t.Helper()
	fsys := fstest.MapFS{}
	if _, ok := files["fleet.yml"]; !ok {
		fsys["fleet.yml"] = &fstest.MapFile{Data: []byte(testFleet)}
	}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	if secrets == nil {
		secrets = map[string]string{}
	}
	p := planner.New(planner.Config{Secrets: mapSecrets(secrets), SecretKey: []byte("k")})
	plan, err := p.Plan(t.Context(), fsys, planner.Input{Repo: "r", Commit: "c"})
	if err == nil {
		return plan, nil
	}
	var cerrs planner.ConfigErrors
	require.True(t, errors.As(err, &cerrs), "want ConfigErrors, got %v", err)
	require.Nil(t, plan)
	return nil, cerrs
}

// svc is a minimal valid service file with extra appended at the top level.
func svc(extra string) string {
	return "service: app\nimage: ghcr.io/acme/app:1.0\nservers: [web-1]\n" + extra
}

func spec(t *testing.T, plan *planner.Plan, target string) *planner.Spec {
	t.Helper()
	for _, c := range plan.Changes {
		if c.Target.String() == target {
			return c.Desired
		}
	}
	require.Fail(t, "no target "+target+" in plan")
	return nil
}

// TestPlanner_ServiceKeys has a good and a bad case for each key and rule:
// a good case must plan and pass check; a bad case must fail with an error
// at the given position containing the given text.
func TestPlanner_ServiceKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string            // services/app.yml
		extra   map[string]string // other files
		wantErr string            // "line:col: text" or "" for a good case
		check   func(t *testing.T, pl *planner.Plan)
	}{
		{name: "minimal", file: svc(""), check: func(t *testing.T, pl *planner.Plan) {
			s := spec(t, pl, "app/web@web-1")
			require.Equal(t, "ghcr.io/acme/app:1.0", s.Image)
			require.Equal(t, "unless-stopped", s.Options.Restart)
			require.Equal(t, 80, s.Proxy.AppPort)
			require.Equal(t, "/up", s.Proxy.HealthPath)
			require.Equal(t, "30s", s.DeployTimeout.String())
			require.Equal(t, "7s", s.ReadinessDelay.String())
			require.Equal(t, map[string]string{"max-size": "10m"}, s.Logging.Options)
			require.Equal(t, 5, pl.Services[0].RetainContainers)
			require.Equal(t, "ghcr.io", pl.Services[0].Registry.Server)
			require.Equal(t, planner.Host{Name: "web-1", Address: "10.0.0.11", User: "root", Port: 22, Jump: "jump@10.0.0.1:2200"}, pl.Hosts["web-1"])
		}},
		{name: "service name bad", file: strings.Replace(svc(""), "service: app", "service: My App", 1), wantErr: "1:10: service: \"My App\" is not a valid name"},
		{name: "service missing", file: "image: a/b:1\nservers: [web-1]\n", wantErr: "1:1: service is missing"},
		{name: "image uppercase", file: strings.Replace(svc(""), "ghcr.io/acme/app:1.0", "ghcr.io/Acme/app:1.0", 1), wantErr: "2:8: image: image \"ghcr.io/Acme/app:1.0\" is not a valid reference"},
		{name: "image space", file: strings.Replace(svc(""), "ghcr.io/acme/app:1.0", "\"ghcr.io/acme/app: 1.0\"", 1), wantErr: "contains white space"},
		{name: "image no tag is a notice", file: strings.Replace(svc(""), ":1.0", "", 1), check: func(t *testing.T, pl *planner.Plan) {
			require.Len(t, pl.Notices, 1)
			require.Contains(t, pl.Notices[0], "services/app.yml:2:8: image ghcr.io/acme/app has no tag")
		}},
		{name: "image digest", file: strings.Replace(svc(""), ":1.0", "@sha256:"+strings.Repeat("a", 64), 1)},
		{name: "unknown key with hint", file: svc("retain_container: 3\n"), wantErr: "4:1: service file: unknown key \"retain_container\" (did you mean \"retain_containers\"?)"},
		{name: "x- keys ignored", file: svc("x-anchors: &e {A: b}\nenv: *e\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, "b", spec(t, pl, "app/web@web-1").Env["A"])
			require.Empty(t, pl.Notices)
		}},
		{name: "merge keys", file: svc("x-base: &b {A: '1', B: '2'}\nenv:\n  <<: *b\n  B: '3'\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, map[string]string{"A": "1", "B": "3"}, spec(t, pl, "app/web@web-1").Env)
		}},
		{name: "build-only keys are notices", file: svc("builder: {arch: amd64}\nhooks_path: .kamal/hooks\nminimum_version: 2.0.0\nsshkit: {max_concurrent_starts: 10}\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Len(t, pl.Notices, 4)
			require.Contains(t, pl.Notices[0], "services/app.yml:4:1: service file: builder is ignored")
		}},
		{name: "duplicate key", file: svc("labels: {a: b}\nlabels: {c: d}\n"), wantErr: "5:1: service file: key \"labels\" appears twice"},
		{name: "servers list is role web", file: svc(""), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, []string{"web"}, pl.Services[0].Roles)
		}},
		{name: "roles", file: "service: app\nimage: a/b:1\nservers:\n  web: [web-1]\n  jobs:\n    hosts: [web-2]\n    cmd: bin/jobs --queue 'a b'\n", check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, []string{"web", "jobs"}, pl.Services[0].Roles)
			j := spec(t, pl, "app/jobs@web-2")
			require.Equal(t, []string{"bin/jobs", "--queue", "a b"}, j.Cmd)
			require.Nil(t, j.Proxy, "a non-primary role is not proxied by default")
		}},
		{name: "role name bad", file: "service: app\nimage: a/b:1\nservers:\n  Web: [web-1]\n", wantErr: "4:3: role name: \"Web\" is not a valid name"},
		{name: "role unknown key", file: "service: app\nimage: a/b:1\nservers:\n  web:\n    host: [web-1]\n", wantErr: "5:5: servers.web: unknown key \"host\" (did you mean \"hosts\"?)"},
		{name: "primary role missing", file: "service: app\nimage: a/b:1\nservers:\n  jobs: [web-1]\n", wantErr: "4:3: primary role \"web\" is not among the roles (jobs)"},
		{name: "primary role set", file: "service: app\nimage: a/b:1\nprimary_role: jobs\nservers:\n  jobs: [web-1]\n", check: func(t *testing.T, pl *planner.Plan) {
			require.NotNil(t, spec(t, pl, "app/jobs@web-1").Proxy, "the primary role is proxied")
		}},
		{name: "role without hosts", file: "service: app\nimage: a/b:1\nservers:\n  web: []\n", wantErr: "4:3: role web has no hosts"},
		{name: "host unknown", file: strings.Replace(svc(""), "[web-1]", "[web-3]", 1), wantErr: "3:11: role web: unknown host \"web-3\" (did you mean \"web-1\"?)"},
		{name: "host raw address", file: strings.Replace(svc(""), "[web-1]", "[10.1.2.3, app.example.com]", 1), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, "10.1.2.3", pl.Hosts["10.1.2.3"].Address)
			require.Equal(t, "app.example.com", pl.Hosts["app.example.com"].Address)
		}},
		{name: "host bad address", file: strings.Replace(svc(""), "[web-1]", "[\"10.0.0.1 ; rm\"]", 1), wantErr: "unknown host"},
		{name: "tag selector", file: strings.Replace(svc(""), "[web-1]", "[tag:web]", 1), check: func(t *testing.T, pl *planner.Plan) {
			require.Len(t, pl.Changes, 2)
		}},
		{name: "tag selector matches nothing", file: strings.Replace(svc(""), "[web-1]", "[tag:webb]", 1), wantErr: "3:11: role web: no server in fleet.yml has tag \"webb\" (did you mean \"web\"?)"},
		{name: "kamal tagged hosts and env tags", file: "service: app\nimage: a/b:1\nservers:\n  - web-1: [eu]\n  - web-2\nenv:\n  clear: {REGION: none}\n  tags:\n    eu: {REGION: eu}\n", check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, "eu", spec(t, pl, "app/web@web-1").Env["REGION"])
			require.Equal(t, "none", spec(t, pl, "app/web@web-2").Env["REGION"])
		}},
		{name: "env plain map", file: svc("env: {RAILS_ENV: production, PORT: 3000}\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, map[string]string{"RAILS_ENV": "production", "PORT": "3000"}, spec(t, pl, "app/web@web-1").Env)
		}},
		{name: "allow_empty_roles", file: strings.Replace(svc("allow_empty_roles: true\n"), "servers: [web-1]", "servers:\n  web: [web-1]\n  jobs: []", 1), check: func(t *testing.T, pl *planner.Plan) {
			require.Len(t, pl.Changes, 1)
		}},
		{name: "empty role", file: strings.Replace(svc(""), "servers: [web-1]", "servers:\n  web: [web-1]\n  jobs: []", 1), wantErr: "role jobs has no hosts"},
		{name: "Kamal 1 traefik", file: svc("traefik: {options: {publish: [\"443:443\"]}}\n"), wantErr: "4:10: traefik is Kamal 1's proxy"},
		{name: "Kamal 1 healthcheck", file: svc("healthcheck: {path: /up, port: 3000}\n"), wantErr: "healthcheck.path is Kamal 1's HTTP health check"},
		{name: "env bad name", file: svc("env: {\"RAILS ENV\": x}\n"), wantErr: "4:7: env: \"RAILS ENV\" is not a valid environment variable name"},
		// Docker takes these, and real Kamal files use them.
		{name: "env names with . and -", file: svc("env: {--http-addr: 0.0.0.0:7700, JAVA.OPTS: x}\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, map[string]string{"--http-addr": "0.0.0.0:7700", "JAVA.OPTS": "x"}, spec(t, pl, "app/web@web-1").Env)
		}},
		{name: "env secret and alias", file: svc("env:\n  secret: [A, 'B:OTHER']\n"), check: func(t *testing.T, pl *planner.Plan) {
			s := spec(t, pl, "app/web@web-1")
			require.Equal(t, "A", s.Secrets["A"].Name)
			require.Equal(t, "OTHER", s.Secrets["B"].Name)
			require.True(t, strings.HasPrefix(s.Secrets["A"].Hash, "hmac-sha256:"))
			require.NotEqual(t, s.Secrets["A"].Hash, s.Secrets["B"].Hash)
		}},
		{name: "env secret bad alias", file: svc("env:\n  secret: ['B:oth er']\n"), wantErr: "5:12: env.secret: secret name \"oth er\" is not a valid"},
		{name: "env clear and secret clash", file: svc("env:\n  clear: {A: x}\n  secret: [A]\n"), wantErr: "6:12: env: A is both a clear and a secret variable"},
		{name: "env role merged over root", file: "service: app\nimage: a/b:1\nservers:\n  web:\n    hosts: [web-1]\n    env: {clear: {B: role}}\nenv: {clear: {A: root, B: root}}\n", check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, map[string]string{"A": "root", "B": "role"}, spec(t, pl, "app/web@web-1").Env)
		}},
		{name: "volumes", file: svc("volumes: [/var/lib/app:/data, 'cache:/cache:ro']\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, []planner.Volume{{Source: "/var/lib/app", Target: "/data"}, {Source: "cache", Target: "/cache", ReadOnly: true}}, spec(t, pl, "app/web@web-1").Volumes)
		}},
		{name: "volume relative target", file: svc("volumes: ['/a:data']\n"), wantErr: "4:11: volumes: volume target \"data\" must be an absolute path"},
		{name: "volume bad option", file: svc("volumes: ['/a:/data:rx']\n"), wantErr: "unknown option \"rx\""},
		{name: "labels", file: svc("labels: {com.example.team: core}\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, "core", spec(t, pl, "app/web@web-1").Labels["com.example.team"])
		}},
		{name: "label reserved", file: svc("labels: {bosun.version: x}\n"), wantErr: "4:10: labels: label \"bosun.version\" is reserved"},
		{name: "label role reserved", file: svc("labels: {role: x}\n"), wantErr: "label \"role\" is reserved (Kamal sets it)"},
		{name: "logging", file: svc("logging: {driver: journald, options: {tag: app}}\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, &planner.Logging{Driver: "journald", Options: map[string]string{"tag": "app"}}, spec(t, pl, "app/web@web-1").Logging)
		}},
		{name: "logging bad key", file: svc("logging: {drivers: x}\n"), wantErr: "did you mean \"driver\"?"},
		{name: "proxy", file: svc("proxy:\n  hosts: [b.example.com, a.example.com]\n  ssl: true\n  app_port: 3000\n  path_prefix: /api\n  response_timeout: 60\n  healthcheck: {path: /health, interval: 2, timeout: 3s}\n"), check: func(t *testing.T, pl *planner.Plan) {
			p := spec(t, pl, "app/web@web-1").Proxy
			require.Equal(t, []string{"a.example.com", "b.example.com"}, p.Hosts)
			require.True(t, p.SSL)
			require.Equal(t, 3000, p.AppPort)
			require.Equal(t, "/api", p.PathPrefix)
			require.Equal(t, "1m0s", p.ResponseTimeout.String())
			require.Equal(t, "/health", p.HealthPath)
			require.Equal(t, "2s", p.HealthInterval.String())
			require.Equal(t, "3s", p.HealthTimeout.String())
		}},
		{name: "proxy host and hosts", file: svc("proxy: {host: a.example.com, hosts: [b.example.com]}\n"), wantErr: "proxy: set host or hosts, not both"},
		{name: "proxy bad host", file: svc("proxy: {host: 'a_b.example.com'}\n"), wantErr: "4:15: proxy: \"a_b.example.com\" is not a valid host name"},
		{name: "proxy bad port", file: svc("proxy: {app_port: 70000}\n"), wantErr: "4:19: proxy.app_port 70000 is not a port"},
		{name: "proxy ssl without host", file: svc("proxy: {ssl: true}\n"), wantErr: "ssl needs a host name"},
		{name: "proxy ssl custom cert", file: svc("proxy: {host: a.example.com, ssl: {certificate_pem: CERT_PEM, private_key_pem: KEY_PEM}}\n"), check: func(t *testing.T, pl *planner.Plan) {
			// mapSecrets of planFiles holds neither: the plan keeps the names only.
			p := spec(t, pl, "app/web@web-1").Proxy
			require.True(t, p.SSL)
			require.Equal(t, &planner.ProxyCertificate{CertificatePEM: planner.SecretRef{Name: "CERT_PEM"}, PrivateKeyPEM: planner.SecretRef{Name: "KEY_PEM"}}, p.Certificate)
		}},
		{name: "proxy ssl custom cert half", file: svc("proxy: {host: a.example.com, ssl: {certificate_pem: CERT_PEM}}\n"), wantErr: "4:35: proxy.ssl: a custom certificate needs both certificate_pem and private_key_pem"},
		{name: "proxy ssl custom cert inline", file: svc("proxy: {host: a.example.com, ssl: {certificate_pem: '-----BEGIN CERTIFICATE-----', private_key_pem: KEY_PEM}}\n"), wantErr: "proxy.ssl.certificate_pem must name a secret holding the PEM, never hold it"},
		{name: "proxy ssl custom cert unknown key", file: svc("proxy: {host: a.example.com, ssl: {certificate: CERT_PEM, private_key_pem: KEY_PEM}}\n"), wantErr: "certificate"},
		{name: "proxy ignored keys", file: svc("proxy: {host: a.example.com, buffering: {requests: true}}\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Contains(t, pl.Notices[0], "proxy: buffering is ignored")
		}},
		{name: "proxy false on primary", file: "service: app\nimage: a/b:1\nservers:\n  web:\n    hosts: [web-1]\n    proxy: false\n", check: func(t *testing.T, pl *planner.Plan) {
			require.Nil(t, spec(t, pl, "app/web@web-1").Proxy)
		}},
		{name: "healthcheck cmd", file: svc("healthcheck: {cmd: pg_isready, interval: 5s, retries: 3}\n"), check: func(t *testing.T, pl *planner.Plan) {
			h := spec(t, pl, "app/web@web-1").Health
			require.Equal(t, []string{"CMD-SHELL", "pg_isready"}, h.Cmd)
			require.Equal(t, "5s", h.Interval.String())
			require.Equal(t, 3, h.Retries)
		}},
		{name: "healthcheck without cmd", file: svc("healthcheck: {interval: 5s}\n"), wantErr: "healthcheck has settings but no cmd"},
		{name: "boot limit percent", file: strings.Replace(svc("boot: {limit: 50%, wait: 2}\n"), "[web-1]", "[web-1, web-2]", 1), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, 1, pl.Services[0].BootLimit)
			require.Equal(t, "2s", pl.Services[0].BootWait.String())
		}},
		{name: "boot limit bad", file: svc("boot: {limit: 0}\n"), wantErr: "4:15: boot.limit must be a number of hosts"},
		{name: "retain containers", file: svc("retain_containers: 2\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, 2, pl.Services[0].RetainContainers)
		}},
		{name: "retain containers zero", file: svc("retain_containers: 0\n"), wantErr: "4:20: retain_containers must be at least 1"},
		{name: "durations", file: svc("deploy_timeout: 1m\ndrain_timeout: 10\nreadiness_delay: 1.5\nstop_timeout: 20s\n"), check: func(t *testing.T, pl *planner.Plan) {
			s := spec(t, pl, "app/web@web-1")
			require.Equal(t, "1m0s", s.DeployTimeout.String())
			require.Equal(t, "10s", s.DrainTimeout.String())
			require.Equal(t, "1.5s", s.ReadinessDelay.String())
			require.Equal(t, "20s", s.StopTimeout.String())
		}},
		{name: "duration bad", file: svc("drain_timeout: -3\n"), wantErr: "drain_timeout: -3 seconds is out of range"},
		{name: "duration zero", file: svc("deploy_timeout: 0s\n"), wantErr: "deploy_timeout must be more than zero"},
		{name: "registry prefixes image", file: "service: app\nimage: acme/app:1\nservers: [web-1]\nregistry: {server: registry.example.com:5000, username: u, password: [PW]}\n", check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, "registry.example.com:5000/acme/app:1", spec(t, pl, "app/web@web-1").Image)
			require.Equal(t, &planner.Registry{Server: "registry.example.com:5000", Username: "u", PasswordSecret: "PW"}, pl.Services[0].Registry)
		}},
		{name: "local registry", file: "service: app\nservers: [web-1]\nregistry: {server: localhost:5555}\n", check: func(t *testing.T, pl *planner.Plan) {
			// Kamal's local registry: the image defaults to the service's
			// name, and the servers pull through a forward of port 5555.
			require.Equal(t, "localhost:5555/app", spec(t, pl, "app/web@web-1").Image)
			require.Equal(t, 5555, pl.Services[0].LocalRegistryPort)
			require.Nil(t, pl.Services[0].Registry)
			require.Contains(t, strings.Join(pl.Notices, "\n"), "services/app.yml:3:20: registry.server localhost:5555 is Kamal's local registry: the servers pull from it through an SSH remote forward to port 5555")
		}},
		{name: "image on localhost without local registry", file: "service: app\nimage: localhost:5000/app:1\nservers: [web-1]\n", check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, 0, pl.Services[0].LocalRegistryPort, "no registry.server: the server pulls from its own loopback")
		}},
		{name: "local registry without port", file: "service: app\nservers: [web-1]\nregistry: {server: localhost}\n", wantErr: "3:20: registry.server: Kamal's local registry needs its port: write localhost:PORT"},
		{name: "local registry bad port", file: "service: app\nservers: [web-1]\nregistry: {server: 'localhost:0'}\n", wantErr: "3:20: registry.server port 0 is not a port"},
		{name: "local registry with path", file: "service: app\nservers: [web-1]\nregistry: {server: localhost:5555/team}\n", wantErr: "Kamal's local registry is localhost:PORT, without a path"},
		{name: "registry literal password", file: svc("registry: {username: u, password: hunter2}\n"), wantErr: "registry.password must name a secret, never hold the password"},
		{name: "public image has no login", file: strings.Replace(svc(""), "ghcr.io/acme/app:1.0", "redis:7-alpine", 1), check: func(t *testing.T, pl *planner.Plan) {
			require.Nil(t, pl.Services[0].Registry)
			require.Equal(t, "redis:7-alpine", spec(t, pl, "app/web@web-1").Image)
		}},
		{name: "ssh per service", file: svc("ssh: {user: app, port: 2200}\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, planner.Host{Name: "web-1", Address: "10.0.0.11", User: "app", Port: 2200, Jump: "jump@10.0.0.1:2200"}, pl.Hosts["web-1"])
		}},
		{name: "ssh inventory wins", file: strings.Replace(svc("ssh: {user: app}\n"), "[web-1]", "[db-1]", 1), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, "deploy", pl.Hosts["db-1"].User)
			require.Equal(t, 2222, pl.Hosts["db-1"].Port)
		}},
		{name: "ssh bad proxy", file: svc("ssh: {proxy: 'a b'}\n"), wantErr: "ssh.proxy: jump host \"a b\" must be [user@]host[:port]"},
		{name: "ssh conflicting", file: svc("ssh: {user: app}\n"), extra: map[string]string{"services/other.yml": "service: other\nimage: a/b:1\nservers: [web-1]\nproxy: {host: other.example.com}\n"},
			wantErr: "services/other.yml:3:11: host web-1 is reached as app@10.0.0.11:22 via jump@10.0.0.1:2200 by service app but as root@10.0.0.11:22"},
		{name: "x-bosun canary", file: svc("x-bosun: {canary: {hosts: 2, watch: 1m}}\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, &planner.Canary{Hosts: 2, Watch: planner.Duration(60e9)}, pl.Services[0].Canary)
		}},
		{name: "x-bosun standby paused", file: svc("x-bosun: {standby: paused}\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, planner.StandbyPaused, pl.Services[0].Standby)
		}},
		{name: "x-bosun standby default", file: svc(""), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, planner.StandbyStopped, pl.Services[0].Standby)
		}},
		{name: "x-bosun standby bad", file: svc("x-bosun: {standby: warm}\n"), wantErr: "x-bosun.standby must be stopped or paused, not \"warm\""},
		{name: "x-bosun unknown", file: svc("x-bosun: {canery: {}}\n"), wantErr: "x-bosun: unknown key \"canery\" (did you mean \"canary\"?)"},
		{name: "two services one proxy host", file: svc("proxy: {host: shop.example.com}\n"), extra: map[string]string{"services/b.yml": "service: b\nimage: a/b:1\nservers: [web-2]\nproxy: {host: shop.example.com}\n"},
			wantErr: "proxy host shop.example.com is already routed to app/web"},
		{name: "two services one host different paths", file: svc("proxy: {host: shop.example.com}\n"), extra: map[string]string{"services/b.yml": "service: b\nimage: a/b:1\nservers: [web-2]\nproxy: {host: shop.example.com, path_prefix: /api}\n"}},
		{name: "two catch-all routes on one server", file: svc(""), extra: map[string]string{"services/b.yml": "service: b\nimage: a/b:1\nservers: [web-1]\n"},
			wantErr: "the catch-all route on web-1 is already routed to app/web"},
		{name: "stateful on one host", file: "service: db\nimage: postgres:16\nprimary_role: db\nservers:\n  db: {hosts: [db-1], proxy: false}\nvolumes: [/srv/db:/var/lib/postgresql/data]\n", check: func(t *testing.T, pl *planner.Plan) {
			require.True(t, spec(t, pl, "db/db@db-1").Stateful)
			require.Equal(t, "30s", spec(t, pl, "db/db@db-1").StopTimeout.String(), "an unproxied role's stop timeout defaults to drain_timeout")
		}},
		{name: "stateful on two hosts", file: "service: db\nimage: postgres:16\nprimary_role: db\nservers:\n  db: {hosts: [db-1, web-1], proxy: false}\nvolumes: [/srv/db:/var/lib/postgresql/data]\n", check: func(t *testing.T, pl *planner.Plan) {
			// Allowed, as in Kamal: each host has its own data, replaced in turn.
			require.Len(t, pl.Warnings, 1)
			require.Contains(t, pl.Warnings[0], "6:11: service db is stateful (a writable volume and no proxy) on 2 hosts (db-1, web-1): each host has its own data")
			require.Equal(t, 1, pl.Services[0].BootLimit)
		}},
		{name: "two files one service", file: svc(""), extra: map[string]string{"services/b.yml": strings.Replace(svc(""), "[web-1]", "[web-2]", 1)}, wantErr: "services/b.yml:1:10: service \"app\" is already defined in services/app.yml"},
		{name: "accessory", file: svc("x-bosun: {allow_dangerous: [public-port]}\naccessories:\n  db:\n    image: postgres:16\n    host: db-1\n    port: 5432\n    env: {secret: [POSTGRES_PASSWORD]}\n    directories: ['/srv/db:/var/lib/postgresql/data']\n"), check: func(t *testing.T, pl *planner.Plan) {
			s := spec(t, pl, "app-db/accessory@db-1")
			require.Equal(t, []string{"5432:5432"}, s.Options.Publish)
			require.True(t, s.Stateful)
			require.Nil(t, s.Proxy)
		}},
		{name: "servers as a string", file: "service: app\nimage: a/b:1\nservers: web-1\n", wantErr: "3:10: servers must be a map, not a string"},
		{name: "cmd as a list", file: "service: app\nimage: a/b:1\nservers:\n  web: {hosts: [web-1], cmd: [sh, -c, 'echo $X']}\n", check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, []string{"sh", "-c", "echo $X"}, spec(t, pl, "app/web@web-1").Cmd)
		}},
		{name: "cmd empty", file: "service: app\nimage: a/b:1\nservers:\n  web: {hosts: [web-1], cmd: ''}\n", wantErr: "servers.web.cmd is empty"},
		{name: "healthcheck retries zero", file: svc("healthcheck: {cmd: [pg_isready], retries: 0}\n"), wantErr: "4:43: healthcheck.retries must be at least 1"},
		{name: "healthcheck list cmd", file: svc("healthcheck: {cmd: [redis-cli, ping]}\n"), check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, []string{"CMD", "redis-cli", "ping"}, spec(t, pl, "app/web@web-1").Health.Cmd)
		}},
		{name: "env tag bad name", file: svc("env:\n  tags:\n    EU: {A: b}\n"), wantErr: "6:5: env.tags: tag \"EU\" is not a valid name"},
		{name: "boot wait bad", file: svc("boot: {wait: later}\n"), wantErr: "4:14: boot.wait must be a duration"},
		{name: "readiness delay bad", file: svc("readiness_delay: [7]\n"), wantErr: "4:18: readiness_delay must be a duration (seconds, or like \"30s\"), not a list"},
		{name: "stop timeout per role", file: "service: app\nimage: a/b:1\nservers:\n  web: {hosts: [web-1], stop_timeout: 45}\n", check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, "45s", spec(t, pl, "app/web@web-1").StopTimeout.String())
		}},
		{name: "logging merged", file: "service: app\nimage: a/b:1\nservers:\n  web: {hosts: [web-1], logging: {options: {max-file: '3'}}}\nlogging: {driver: json-file, options: {max-size: 5m}}\n", check: func(t *testing.T, pl *planner.Plan) {
			require.Equal(t, &planner.Logging{Driver: "json-file", Options: map[string]string{"max-size": "5m", "max-file": "3"}}, spec(t, pl, "app/web@web-1").Logging)
		}},
		{name: "x-bosun next to template", file: "template: t\nvars: {}\nx-bosun: {canary: {hosts: 1}}\n", extra: map[string]string{"templates/t.yml.tmpl": svc("")}, wantErr: "3:10: x-bosun next to template: is not read"},
		{name: "alias bomb", file: svc("x-a: &a [1,1,1,1,1,1,1,1,1,1]\nx-b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nx-c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nx-d: &d {<<: [*c]}\nlabels: *d\n"), wantErr: "labels"},
		{name: "accessory files", file: svc("accessories:\n  db:\n    image: postgres:16\n    host: db-1\n    files: [a:/b]\n"), wantErr: "accessories.db.files: bosun does not upload files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"services/app.yml": tt.file}
			for k, v := range tt.extra {
				files[k] = v
			}
			plan, errs := planFiles(t, files, map[string]string{"A": "a", "OTHER": "o", "POSTGRES_PASSWORD": "p"})
			if tt.wantErr == "" {
				require.Nil(t, errs, "want a plan")
				if tt.check != nil {
					tt.check(t, plan)
				}
				return
			}
			require.NotNil(t, errs, "want an error containing %q", tt.wantErr)
			want := tt.wantErr
			if want[0] >= '0' && want[0] <= '9' { // a position in services/app.yml
				want = "services/app.yml:" + want
			}
			require.Contains(t, errs.Error(), want)
		})
	}
}

type emptyFS struct{}

func (emptyFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{"fleet.yml": &fstest.MapFile{Data: []byte(testFleet)}}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

// TestPlanner_labelKeyTooLong: a label key over Docker's limit is told the
// limit, not the character set, and the message does not repeat the key.
func TestPlanner_labelKeyTooLong(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("a", 1000)
	_, errs := planFiles(t, map[string]string{"services/web.yml": "service: web\nimage: a/b:1\nservers: [web-1]\nlabels: {" + key + ": x}\n"}, nil)
	require.NotNil(t, errs)
	msg := errs.Error()
	require.Contains(t, msg, "1000 characters long: at most 255")
	require.NotContains(t, msg, "use letters, digits")
	require.NotContains(t, msg, key)
}
