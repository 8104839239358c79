package executor

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/bosunhq/bosun/planner"
)

func TestContainerConfig_Options(t *testing.T) {
	s := &planner.Spec{
		Service: "api", Role: "worker", Image: "reg.example/api:1",
		Cmd:    []string{"bin/jobs", "--queue", "$(default)"},
		Env:    map[string]string{"B": "2", "A": "x; rm -rf /"},
		Labels: map[string]string{"team": "core"},
		Volumes: []planner.Volume{
			{Source: "/srv/data", Target: "/data"},
			{Source: "cache", Target: "/cache", ReadOnly: true},
		},
		Options: planner.Options{
			Memory: "512m", CPUs: "1.5", Restart: "on-failure:3", AddHosts: []string{"db:10.0.0.2"},
			CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"ALL"}, Ulimits: []string{"nofile=1024:2048"},
			Publish: []string{"127.0.0.1:9000:9000/tcp"}, User: "app", Workdir: "/app", ShmSize: "64m",
			PidsLimit: 100, ReadOnly: true, Init: true, Tmpfs: []string{"/run:size=64m"}, StopSignal: "SIGQUIT",
		},
		Logging:     &planner.Logging{Driver: "json-file", Options: map[string]string{"max-size": "10m"}},
		Health:      planner.Health{Cmd: []string{"CMD", "true"}, Interval: planner.Duration(time.Second), Retries: 3},
		StopTimeout: planner.Duration(20 * time.Second),
	}
	cfg, hc, nc, err := containerConfig(s, createParams{Repo: "r", Commit: "c", Version: "v1", Host: "h", Env: map[string]string{"B": "2", "A": "x; rm -rf /"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Env, "|") != "A=x; rm -rf /|B=2" {
		t.Errorf("Env = %q", cfg.Env)
	}
	if strings.Join(cfg.Cmd, "|") != "bin/jobs|--queue|$(default)" {
		t.Errorf("Cmd = %q", cfg.Cmd)
	}
	for k, v := range map[string]string{LabelService: "api", LabelRole: "worker", LabelVersion: "v1", LabelCommit: "c", LabelRepo: "r", "team": "core"} {
		if cfg.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cfg.Labels[k], v)
		}
	}
	if cfg.Healthcheck == nil || cfg.Healthcheck.Retries != 3 || cfg.User != "app" || cfg.WorkingDir != "/app" || cfg.StopSignal != "SIGQUIT" || *cfg.StopTimeout != 20 {
		t.Errorf("config = %+v", cfg)
	}
	if hc.Memory != 512<<20 || hc.NanoCPUs != 1.5e9 || hc.ShmSize != 64<<20 || *hc.PidsLimit != 100 || !*hc.Init || !hc.ReadonlyRootfs {
		t.Errorf("resources = %+v", hc.Resources)
	}
	if hc.RestartPolicy != (container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}) {
		t.Errorf("restart = %+v", hc.RestartPolicy)
	}
	if len(hc.Ulimits) != 1 || hc.Ulimits[0].Name != "nofile" || hc.Ulimits[0].Hard != 2048 {
		t.Errorf("ulimits = %+v", hc.Ulimits)
	}
	if b := hc.PortBindings["9000/tcp"]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != "9000" {
		t.Errorf("port bindings = %+v", hc.PortBindings)
	}
	if hc.Tmpfs["/run"] != "size=64m" || hc.ExtraHosts[0] != "db:10.0.0.2" || hc.NetworkMode != NetworkName {
		t.Errorf("host config = %+v", hc)
	}
	if len(hc.Binds) != 1 || hc.Binds[0] != "/srv/data:/data" {
		t.Errorf("binds = %q", hc.Binds)
	}
	if len(hc.Mounts) != 1 || hc.Mounts[0] != (mount.Mount{Type: mount.TypeVolume, Source: "cache", Target: "/cache", ReadOnly: true}) {
		t.Errorf("mounts = %+v", hc.Mounts)
	}
	if hc.LogConfig.Type != "json-file" || hc.LogConfig.Config["max-size"] != "10m" {
		t.Errorf("log config = %+v", hc.LogConfig)
	}
	if ep := nc.EndpointsConfig[NetworkName]; ep == nil || ep.Aliases[0] != "api-worker" {
		t.Errorf("networking = %+v", nc.EndpointsConfig)
	}
}

func TestContainerConfig_Rejects(t *testing.T) {
	for name, mut := range map[string]func(*planner.Spec){
		"reserved label":   func(s *planner.Spec) { s.Labels = map[string]string{"bosun.version": "x"} },
		"bad memory":       func(s *planner.Spec) { s.Options.Memory = "lots" },
		"bad restart":      func(s *planner.Spec) { s.Options.Restart = "sometimes" },
		"colon in volume":  func(s *planner.Spec) { s.Volumes = []planner.Volume{{Source: "/a:/etc", Target: "/b"}} },
		"relative target":  func(s *planner.Spec) { s.Volumes = []planner.Volume{{Source: "v", Target: "b"}} },
		"bad volume name":  func(s *planner.Spec) { s.Volumes = []planner.Volume{{Source: "v;x", Target: "/b"}} },
		"relative tmpfs":   func(s *planner.Spec) { s.Options.Tmpfs = []string{"run"} },
		"negative cpus":    func(s *planner.Spec) { s.Options.CPUs = "-1" },
		"bad publish spec": func(s *planner.Spec) { s.Options.Publish = []string{"x:y:z:w"} },
		"home unknown":     func(s *planner.Spec) { s.Volumes = []planner.Volume{{Source: "~/a", Target: "/b"}} },
	} {
		t.Run(name, func(t *testing.T) {
			s := &planner.Spec{Service: "a", Role: "web", Image: "i"}
			mut(s)
			if _, _, _, err := containerConfig(s, createParams{}); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestContainerConfig_Kamal: a home-relative source becomes a bind below the
// SSH user's home, and an accessory answers to its service name too.
func TestContainerConfig_Kamal(t *testing.T) {
	s := &planner.Spec{Service: "shop-db", Role: planner.AccessoryRole, Image: "postgres:16",
		Volumes: []planner.Volume{{Source: "~/shop-db/data", Target: "/var/lib/postgresql/data"}, {Source: "~/conf", Target: "/c", ReadOnly: true}}}
	_, hc, nc, err := containerConfig(s, createParams{Home: "/home/deploy"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/home/deploy/shop-db/data:/var/lib/postgresql/data", "/home/deploy/conf:/c:ro"}; !slices.Equal(hc.Binds, want) {
		t.Errorf("binds = %q, want %q", hc.Binds, want)
	}
	if got := nc.EndpointsConfig[NetworkName].Aliases; !slices.Equal(got, []string{"shop-db-accessory", "shop-db"}) {
		t.Errorf("aliases = %q", got)
	}
	esc := &planner.Spec{Service: "a", Role: "web", Image: "i", Volumes: []planner.Volume{{Source: "~/../etc", Target: "/b"}}}
	if _, _, _, err := containerConfig(esc, createParams{Home: "/home/deploy"}); err == nil {
		t.Error("a source that leaves the home folder was accepted")
	}
	s.Role = "web"
	_, _, nc, _ = containerConfig(s, createParams{Home: "/home/deploy"})
	if got := nc.EndpointsConfig[NetworkName].Aliases; !slices.Equal(got, []string{"shop-db-web"}) {
		t.Errorf("aliases of an app role = %q", got)
	}
}

// TestContainerConfig_KamalOptions maps the docker run options Kamal files
// use onto the Engine API.
func TestContainerConfig_KamalOptions(t *testing.T) {
	s := &planner.Spec{Service: "scout", Role: "web", Image: "i",
		Options: planner.Options{Network: "scout_shared", NetworkAliases: []string{"scout-web"}, GroupAdd: []string{"video"},
			MemorySwap: "2g", SecurityOpt: []string{"no-new-privileges"}, Privileged: true, PID: "host",
			Mounts: []string{`type=volume,src=certs,dst=/certs,volume-driver=local,volume-opt=type=nfs,"volume-opt=o=addr=nfs.example.com,nfsvers=3"`, "type=tmpfs,dst=/scratch,tmpfs-size=64m"}},
		Health: planner.Health{Cmd: []string{"CMD-SHELL", "true"}, Interval: planner.Duration(time.Second), StartPeriod: planner.Duration(30 * time.Second)}}
	cfg, hc, nc, err := containerConfig(s, createParams{})
	if err != nil {
		t.Fatal(err)
	}
	if !hc.Privileged || hc.PidMode != "host" || !slices.Equal(hc.GroupAdd, []string{"video"}) || hc.MemorySwap != 2<<30 ||
		!slices.Equal(hc.SecurityOpt, []string{"no-new-privileges"}) {
		t.Errorf("host config = %+v", hc)
	}
	if len(hc.Mounts) != 2 || hc.Mounts[0].VolumeOptions.DriverConfig.Options["o"] != "addr=nfs.example.com,nfsvers=3" ||
		hc.Mounts[0].Source != "certs" || hc.Mounts[1].Type != "tmpfs" || hc.Mounts[1].TmpfsOptions.SizeBytes != 64<<20 {
		t.Errorf("mounts = %+v", hc.Mounts)
	}
	if cfg.Healthcheck == nil || cfg.Healthcheck.StartPeriod != 30*time.Second {
		t.Errorf("health = %+v", cfg.Healthcheck)
	}
	if got := nc.EndpointsConfig[NetworkName].Aliases; !slices.Equal(got, []string{"scout-web"}) {
		t.Errorf("aliases = %q, want scout-web once (the service-role name and options.network-alias are the same)", got)
	}
	s.Options.NetworkAliases = []string{"scout-web", "api"}
	_, _, nc, _ = containerConfig(s, createParams{})
	if got := nc.EndpointsConfig[NetworkName].Aliases; !slices.Equal(got, []string{"scout-web", "api"}) {
		t.Errorf("aliases = %q, want scout-web (once) and api", got)
	}
	if extraNetwork(s) != "scout_shared" {
		t.Errorf("extra network = %q", extraNetwork(s))
	}
	s.Options.Network = "host"
	_, hc, nc, err = containerConfig(s, createParams{})
	if err != nil || hc.NetworkMode != "host" || len(nc.EndpointsConfig) != 0 || extraNetwork(s) != "" {
		t.Errorf("host network: %v %q %+v", err, hc.NetworkMode, nc)
	}
}

func TestValidateTarget(t *testing.T) {
	for _, bad := range [][3]string{
		{"web;rm", "web", "v1"}, {"web", "$(id)", "v1"}, {"Web", "web", "v1"}, {"web", "web", "v 1"}, {"", "web", "v1"}, {"web", "web", "../x"},
	} {
		if err := validateTarget(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("validateTarget%q accepted", bad)
		}
	}
	if err := validateTarget("shop-api", "web", "0a1b2c3d4e5f"); err != nil {
		t.Error(err)
	}
}

func TestResolveEnvAndRegistryAuth(t *testing.T) {
	s := &planner.Spec{Env: map[string]string{"A": "1"}, Secrets: map[string]planner.SecretRef{"DB_PASSWORD": {Name: "DB_PW"}}}
	if _, err := resolveEnv(s, secretSource{}); err == nil || !strings.Contains(err.Error(), "DB_PW") {
		t.Errorf("missing secret: %v", err)
	}
	env, err := resolveEnv(s, secretSource{"DB_PW": "hunter2"})
	if err != nil || env["DB_PASSWORD"] != "hunter2" || env["A"] != "1" {
		t.Errorf("env = %v, %v", env, err)
	}
	if a, err := registryAuth(nil, nil); a != "" || err != nil {
		t.Errorf("no registry: %q %v", a, err)
	}
	a, err := registryAuth(&planner.Registry{Server: "ghcr.io", Username: "acme", PasswordSecret: "TOKEN"}, secretSource{"TOKEN": "t0k"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.URLEncoding.DecodeString(a)
	var got struct{ Username, Password, ServerAddress string }
	if err := json.Unmarshal(raw, &got); err != nil || got.Username != "acme" || got.Password != "t0k" || got.ServerAddress != "ghcr.io" {
		t.Errorf("auth = %s (%v)", raw, err)
	}
	if _, err := registryAuth(&planner.Registry{Server: "ghcr.io", PasswordSecret: "NOPE"}, secretSource{}); err == nil || strings.Contains(err.Error(), "t0k") {
		t.Errorf("missing registry secret: %v", err)
	}
}
