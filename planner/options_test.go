package planner_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

// TestPlanner_Options checks a good and a bad value for every documented
// option, and that each lands in the right Options field.
func TestPlanner_Options(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, good, bad string
		want           func(o planner.Options) any
		wantVal        any
	}{
		{"memory", "512m", "lots", func(o planner.Options) any { return o.Memory }, "512m"},
		{"memory-reservation", "256m", "-1", func(o planner.Options) any { return o.MemoryReservation }, "256m"},
		{"cpus", "1.5", "0", func(o planner.Options) any { return o.CPUs }, "1.5"},
		{"restart", "on-failure:3", "sometimes", func(o planner.Options) any { return o.Restart }, "on-failure:3"},
		{"add-host", "[db.internal:10.0.0.5, host.docker.internal:host-gateway]", "db.internal", func(o planner.Options) any { return o.AddHosts }, []string{"db.internal:10.0.0.5", "host.docker.internal:host-gateway"}},
		{"cap-add", "NET_ADMIN", "net_admin", func(o planner.Options) any { return o.CapAdd }, []string{"NET_ADMIN"}},
		{"cap-drop", "[ALL]", "EVERYTHING", func(o planner.Options) any { return o.CapDrop }, []string{"ALL"}},
		{"ulimit", "nofile=1024:2048", "nofile=2048:1024", func(o planner.Options) any { return o.Ulimits }, []string{"nofile=1024:2048"}},
		{"publish", "127.0.0.1:5432:5432", "5432:99999", func(o planner.Options) any { return o.Publish }, []string{"127.0.0.1:5432:5432"}},
		{"user", "1000:1000", "root; rm -rf /", func(o planner.Options) any { return o.User }, "1000:1000"},
		{"workdir", "/app", "app", func(o planner.Options) any { return o.Workdir }, "/app"},
		{"shm-size", "64m", "64x", func(o planner.Options) any { return o.ShmSize }, "64m"},
		{"pids-limit", "100", "0", func(o planner.Options) any { return o.PidsLimit }, int64(100)},
		{"read-only", "true", "yes please", func(o planner.Options) any { return o.ReadOnly }, true},
		{"init", "true", "1x", func(o planner.Options) any { return o.Init }, true},
		{"tmpfs", "/run:size=64m", "run", func(o planner.Options) any { return o.Tmpfs }, []string{"/run:size=64m"}},
		{"stop-signal", "SIGQUIT", "SIGFOO", func(o planner.Options) any { return o.StopSignal }, "SIGQUIT"},
		{"network", "private", "my net", func(o planner.Options) any { return o.Network }, "private"},
		{"network-alias", "[scout-web, api]", "Scout_Web", func(o planner.Options) any { return o.NetworkAliases }, []string{"scout-web", "api"}},
		{"group-add", "[video, \"1001\"]", "wheel;x", func(o planner.Options) any { return o.GroupAdd }, []string{"video", "1001"}},
		{"memory-swap", "2g", "-2", func(o planner.Options) any { return o.MemorySwap }, "2g"},
		{"mount", `'type=volume,src=certs,dst=/certs,volume-driver=local,volume-opt=type=nfs,"volume-opt=o=addr=nfs.example.com,nfsvers=3"'`, "type=bind,src=rel,dst=/x", func(o planner.Options) any { return o.Mounts }, []string{`type=volume,src=certs,dst=/certs,volume-driver=local,volume-opt=type=nfs,"volume-opt=o=addr=nfs.example.com,nfsvers=3"`}},
		{"security-opt", "no-new-privileges", "seccomp=/etc/profile.json", func(o planner.Options) any { return o.SecurityOpt }, []string{"no-new-privileges"}},
	}
	file := func(key, val string) string {
		return "service: app\nimage: a/b:1\nservers:\n  web:\n    hosts: [web-1]\n    options:\n      " + key + ": " + val + "\n"
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			plan, errs := planFiles(t, map[string]string{"services/app.yml": file(tt.key, tt.good)}, nil)
			require.Nil(t, errs)
			require.Equal(t, tt.wantVal, tt.want(spec(t, plan, "app/web@web-1").Options))

			_, errs = planFiles(t, map[string]string{"services/app.yml": file(tt.key, "'"+tt.bad+"'")}, nil)
			require.Len(t, errs, 1, "want one error for %s: %q", tt.key, tt.bad)
			require.Equal(t, 7, errs[0].Line)
			require.True(t, strings.HasPrefix(errs[0].Msg, "servers.web.options."), errs[0].Msg)
		})
	}
	t.Run("health options", func(t *testing.T) {
		f := "service: app\nimage: a/b:1\nservers:\n  worker:\n    hosts: [web-1]\n    options:\n      health-cmd: pg_isready\n      health-interval: 2s\n      health-retries: 4\n      health-start-period: 30s\nprimary_role: worker\n"
		plan, errs := planFiles(t, map[string]string{"services/app.yml": f}, nil)
		require.Nil(t, errs)
		require.Equal(t, planner.Health{Cmd: []string{"CMD-SHELL", "pg_isready"}, Interval: planner.Duration(2e9), Timeout: planner.Duration(5e9), Retries: 4, StartPeriod: planner.Duration(30e9)},
			spec(t, plan, "app/worker@web-1").Health)
		_, errs = planFiles(t, map[string]string{"services/app.yml": strings.Replace(f, "      health-cmd: pg_isready\n", "", 1)}, nil)
		require.ErrorContains(t, errs, "health options need health-cmd")
	})
	t.Run("unknown option", func(t *testing.T) {
		_, errs := planFiles(t, map[string]string{"services/app.yml": file("device", "/dev/sda")}, nil)
		require.Len(t, errs, 1)
		require.Contains(t, errs[0].Msg, `unknown key "device"`)
	})
	t.Run("misspelt option", func(t *testing.T) {
		_, errs := planFiles(t, map[string]string{"services/app.yml": file("memroy", "1g")}, nil)
		require.Contains(t, errs[0].Msg, `(did you mean "memory"?)`)
	})
}

// TestPlanner_Fleet checks fleet.yml.
func TestPlanner_Fleet(t *testing.T) {
	t.Parallel()
	good := "service: app\nimage: a/b:1\nservers: [s1]\n"
	tests := []struct {
		name, fleet, wantErr string
	}{
		{"short form", "servers:\n  s1: 10.0.0.1\n", ""},
		{"missing host", "servers:\n  s1: {user: x}\n", "fleet.yml:2:3: servers.s1 has no host"},
		{"bad host", "servers:\n  s1: {host: 'not a host'}\n", "fleet.yml:2:14: servers.s1.host: \"not a host\" is not an IP address or a host name"},
		{"bad port", "servers:\n  s1: {host: 10.0.0.1, port: 0}\n", "fleet.yml:2:30: servers.s1.port 0 is not a port"},
		{"bad name", "servers:\n  S1: {host: 10.0.0.1}\n  s1: 10.0.0.2\n", "fleet.yml:2:3: server name: \"S1\" is not a valid name"},
		{"bad tag", "servers:\n  s1: {host: 10.0.0.1, tags: [Web]}\n", "fleet.yml:2:31: servers.s1.tags: \"Web\" is not a valid name"},
		{"unknown key", "servers:\n  s1: {host: 10.0.0.1}\ndefault: {}\n", "fleet.yml:3:1: fleet.yml: unknown key \"default\" (did you mean \"defaults\"?)"},
		{"ssh keys ignored", "servers:\n  s1: 10.0.0.1\ndefaults: {ssh: {keys: [~/.ssh/id]}}\n", ""},
		{"bad registry", "servers:\n  s1: 10.0.0.1\ndefaults: {registry: {server: 'a b', username: u, password: [P]}}\n", "defaults.registry.server: \"a b\" is not an IP address or a host name"},
		{"registry without password", "servers:\n  s1: 10.0.0.1\ndefaults: {registry: {server: ghcr.io, username: u}}\n", "set both username and password, or neither"},
		{"not yaml", "servers: [\n", "fleet.yml:1:1: not valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, errs := planFiles(t, map[string]string{"fleet.yml": tt.fleet, "services/app.yml": good}, nil)
			if tt.wantErr == "" {
				require.Nil(t, errs)
				return
			}
			require.Len(t, errs, 1, "want only %q", tt.wantErr)
			require.Contains(t, errs.Error(), tt.wantErr)
		})
	}
	t.Run("no fleet.yml", func(t *testing.T) {
		p := planner.New(planner.Config{})
		_, err := p.Plan(t.Context(), emptyFS{}, planner.Input{})
		require.NotContains(t, err.Error(), "fleet.yml")
		require.ErrorContains(t, err, "services:0:0: no service files")
		// Optional when every host is an address or a DNS name (item 8).
		fsys := fstest.MapFS{"services/app.yml": {Data: []byte("service: app\nimage: a/b:1\nservers: [10.0.0.5, app1.example.com]\n")}}
		plan, err := p.Plan(t.Context(), fsys, planner.Input{})
		require.NoError(t, err)
		require.Len(t, plan.Changes, 2)
		fsys["services/app.yml"] = &fstest.MapFile{Data: []byte("service: app\nimage: a/b:1\nservers: [web-1]\n")}
		_, err = p.Plan(t.Context(), fsys, planner.Input{})
		require.ErrorContains(t, err, `unknown host "web-1"`)
	})
}
