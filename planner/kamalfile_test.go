package planner_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

// planIn plans files with in (Repo and Commit filled in).
func planIn(t *testing.T, files map[string]string, in planner.Input) (*planner.Plan, planner.ConfigErrors) {
	t.Helper()
	fsys := fstest.MapFS{}
	if _, ok := files["fleet.yml"]; !ok {
		fsys["fleet.yml"] = &fstest.MapFile{Data: []byte(testFleet)}
	}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	in.Repo, in.Commit = "r", "c"
	plan, err := planner.New(planner.Config{SecretKey: []byte("k")}).Plan(t.Context(), fsys, in)
	if err == nil {
		return plan, nil
	}
	var cerrs planner.ConfigErrors
	require.True(t, errors.As(err, &cerrs), "want ConfigErrors, got %v", err)
	return nil, cerrs
}

func TestERB_ENVLookups(t *testing.T) {
	t.Parallel()
	file := `service: app
image: <%= ENV["IMAGE"] %>
servers:
  - <%= ENV.fetch('HOST') %>
env:
  clear:
    REGION: <%= ENV.fetch("REGION", "eu-west") %>
    ZONE: "<%= ENV.fetch('ZONE', 'a') %>-1"
    <%# an ERB comment %>
# <%= %x(ignored in a YAML comment) %>
`
	plan, errs := planIn(t, map[string]string{"services/app.yml": file}, planner.Input{
		ERBEnv: map[string]string{"IMAGE": "ghcr.io/acme/app:1.0", "HOST": "10.0.0.7", "ZONE": "b"}})
	require.Nil(t, errs)
	s := spec(t, plan, "app/web@10.0.0.7")
	require.Equal(t, "ghcr.io/acme/app:1.0", s.Image)
	require.Equal(t, map[string]string{"REGION": "eu-west", "ZONE": "b-1"}, s.Env)
}

func TestERB_Refusals(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ line, want string }{
		"shell":         {"    A: <%= %x(./password.sh) %>", "services/app.yml:6:8: ERB is not run; only ENV lookups are supported"},
		"backticks":     {"    A: <%= `git describe`.strip %>", "services/app.yml:6:8: ERB is not run"},
		"if":            {"    <% if ENV['X'] %>", "services/app.yml:6:5: ERB is not run"},
		"other ruby":    {"    A: <%= File.read('.ruby-version').strip %>", "services/app.yml:6:8: ERB is not run"},
		"method on ENV": {"    A: <%= ENV['X'].upcase %>", "services/app.yml:6:8: ERB is not run"},
		// The daemon's own environment is never visible: only listed names.
		"unlisted":  {"    A: <%= ENV['BOSUN_WEBHOOK_SECRET'] %>", "services/app.yml:6:8: ERB: BOSUN_WEBHOOK_SECRET is not available"},
		"multiline": {"    A: <%= ENV['MULTI'] %>", "ERB: the value of MULTI has a line break"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			file := "service: app\nimage: ghcr.io/acme/app:1.0\nservers: [web-1]\nenv:\n  clear:\n" + tc.line + "\n"
			_, errs := planIn(t, map[string]string{"services/app.yml": file},
				planner.Input{ERBEnv: map[string]string{"MULTI": "a\nb: c"}})
			require.NotNil(t, errs)
			require.Len(t, errs, 1, "one clear error, not unrelated YAML errors: %v", errs)
			require.Contains(t, errs.Error(), tc.want)
		})
	}
}

// TestERB_RefusalIsTheOnlyError: a value whose ERB bosun does not run is
// reported once, at its line, and not again by the checks that would have
// read it: no "set both username and password" for a password from a
// shell command, no "has no hosts" for a host from an unlisted variable.
func TestERB_RefusalIsTheOnlyError(t *testing.T) {
	t.Parallel()
	file := `service: app
image: app
servers:
  web:
    hosts:
      - <%= ENV.fetch('APP_HOST') %>
registry:
  server: <%= ENV.fetch('APP_REGISTRY') %>
  username: AWS
  password: <%= %x(./registry_password.sh) %>
`
	_, errs := planIn(t, map[string]string{"services/app.yml": file}, planner.Input{})
	require.NotNil(t, errs)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	require.Len(t, got, 3, "one error per ERB tag, nothing else: %q", got)
	require.Contains(t, got[0], "services/app.yml:6:9: ERB: APP_HOST is not available")
	require.Contains(t, got[1], "services/app.yml:8:11: ERB: APP_REGISTRY is not available")
	require.Contains(t, got[2], "services/app.yml:10:13: ERB is not run")
}

func TestERBEnvFrom_OnlyListedNames(t *testing.T) {
	t.Parallel()
	env := map[string]string{"A": "1", "SECRET": "x", "EMPTY": ""}
	got := planner.ERBEnvFrom(func(k string) string { return env[k] }, []string{"A", "EMPTY", "MISSING"})
	require.Equal(t, map[string]string{"A": "1"}, got)
}

func TestDestination_DeepMerge(t *testing.T) {
	t.Parallel()
	base := `service: app
image: ghcr.io/acme/app:1.0
servers:
  web:
    hosts: [web-1]
    options: {memory: 1g}
env:
  clear: {RAILS_ENV: production, A: base}
proxy:
  host: app.example.com
  app_port: 3000
`
	staging := `servers:
  web:
    hosts: [web-2]
env:
  clear: {RAILS_ENV: staging}
proxy:
  host: staging.example.com
`
	files := map[string]string{"services/app.yml": base, "services/app.staging.yml": staging}

	plan, errs := planIn(t, files, planner.Input{Destination: "staging"})
	require.Nil(t, errs)
	require.Len(t, plan.Changes, 1)
	s := spec(t, plan, "app/web@web-2")
	// Maps merge key by key; lists and scalars are replaced.
	require.Equal(t, map[string]string{"RAILS_ENV": "staging", "A": "base"}, s.Env)
	require.Equal(t, "1g", s.Options.Memory)
	require.Equal(t, []string{"staging.example.com"}, s.Proxy.Hosts)
	require.Equal(t, 3000, s.Proxy.AppPort)

	// Without a destination the base plans alone; the destination file is
	// not a service of its own.
	plan, errs = planIn(t, files, planner.Input{})
	require.Nil(t, errs)
	require.Len(t, plan.Changes, 1)
	spec(t, plan, "app/web@web-1")

	// An error in the destination file is reported there.
	files["services/app.staging.yml"] = "servers:\n  web:\n    hosts: [web-9]\n"
	_, errs = planIn(t, files, planner.Input{Destination: "staging"})
	require.NotNil(t, errs)
	require.True(t, strings.HasPrefix(errs.Error(), "services/app.staging.yml:3:13: role web: unknown host \"web-9\""), errs.Error())
}

func TestDestination_Required(t *testing.T) {
	t.Parallel()
	files := map[string]string{"services/app.yml": svc("require_destination: true\n")}
	_, errs := planIn(t, files, planner.Input{})
	require.ErrorContains(t, errs, "services/app.yml:4:22: this file needs a destination")
	files["services/app.prod.yml"] = "env: {A: b}\n"
	_, errs = planIn(t, files, planner.Input{Destination: "prod"})
	require.Nil(t, errs)
	_, err := planner.New(planner.Config{}).Plan(t.Context(), fstest.MapFS{}, planner.Input{Destination: "../x"})
	require.ErrorContains(t, err, "is not a valid name")
}

// TestKamalPaths_HomeRelative: Kamal keeps a relative accessory directory
// in ~/<service>-<accessory>/DIR and resolves a ./ bind source against the
// SSH user's home; the spec says so with planner.HomePrefix.
func TestKamalPaths_HomeRelative(t *testing.T) {
	t.Parallel()
	file := `service: shop
image: ghcr.io/acme/shop:1.0
servers: [web-1]
volumes: ["./storage:/rails/storage"]
accessories:
  db:
    image: postgres:16
    host: db-1
    directories: ["data:/var/lib/postgresql/data", "./conf/x:/etc/x:ro", "/srv/abs:/abs"]
    volumes: ["./volumes/db:/backup"]
  cache:
    service: shop-redis
    image: redis:7
    host: db-1
    directories: ["data:/data"]
`
	plan, errs := planIn(t, map[string]string{"services/shop.yml": file}, planner.Input{})
	require.Nil(t, errs)
	require.Equal(t, []planner.Volume{{Source: "~/storage", Target: "/rails/storage"}}, spec(t, plan, "shop/web@web-1").Volumes)
	require.Equal(t, []planner.Volume{
		{Source: "~/volumes/db", Target: "/backup"},
		{Source: "~/shop-db/data", Target: "/var/lib/postgresql/data"},
		{Source: "~/shop-db/conf/x", Target: "/etc/x", ReadOnly: true},
		{Source: "/srv/abs", Target: "/abs"},
	}, spec(t, plan, "shop-db/accessory@db-1").Volumes)
	require.Equal(t, []planner.Volume{{Source: "~/shop-redis/data", Target: "/data"}}, spec(t, plan, "shop-redis/accessory@db-1").Volumes)

	for _, bad := range []string{`volumes: ["./../x:/x"]`, `volumes: ["./:/x"]`} {
		_, errs := planIn(t, map[string]string{"services/shop.yml": "service: shop\nimage: ghcr.io/acme/shop:1.0\nservers: [web-1]\n" + bad + "\n"}, planner.Input{})
		require.ErrorContains(t, errs, "must stay inside the SSH user's home folder", bad)
	}
}

// TestLoad_BigFileWithoutAliases: a file with more entries than the alias
// budget but no aliases plans; an alias bomb is still refused, with no false
// "no hosts" error after it.
func TestLoad_BigFileWithoutAliases(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("service: app\nimage: ghcr.io/acme/app:1.0\nservers: [web-1]\nlabels:\n")
	for i := range 210_000 {
		fmt.Fprintf(&b, "  l%d: v\n", i)
	}
	_, errs := planIn(t, map[string]string{"services/app.yml": b.String()}, planner.Input{})
	require.Nil(t, errs)

	// Merge keys that each merge the previous map ten times: 10^6 walks.
	bomb := "x-m0: &m0 {a: b, c: d}\n"
	for i := 1; i <= 6; i++ {
		p := fmt.Sprintf("*m%d", i-1)
		bomb += fmt.Sprintf("x-m%d: &m%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(p+", ", 10), ", "))
	}
	bomb += "service: app\nimage: ghcr.io/acme/app:1.0\nlabels: *m6\nservers:\n  web:\n    hosts: [web-1]\n"
	_, errs = planIn(t, map[string]string{"services/app.yml": bomb}, planner.Input{})
	require.NotNil(t, errs)
	require.Contains(t, errs.Error(), "too many aliases and merge keys")
	require.NotContains(t, errs.Error(), "has no hosts")
}

func TestRegistry_PathAndPasswordErrors(t *testing.T) {
	t.Parallel()
	file := "service: app\nimage: app:1.0\nservers: [web-1]\nregistry: {server: registry.digitalocean.com/team, username: u, password: [DO_TOKEN]}\n"
	plan, errs := planIn(t, map[string]string{"services/app.yml": file}, planner.Input{})
	require.Nil(t, errs)
	require.Equal(t, "registry.digitalocean.com/team/app:1.0", spec(t, plan, "app/web@web-1").Image)
	require.Equal(t, "registry.digitalocean.com/team", plan.Services[0].Registry.Server)

	// A literal (or ERB-rendered) password is one error, not also "set both".
	file = "service: app\nimage: app:1.0\nservers: [web-1]\nregistry: {username: u, password: hunter2}\n"
	_, errs = planIn(t, map[string]string{"services/app.yml": file}, planner.Input{})
	require.Len(t, errs, 1, "%v", errs)
	require.Contains(t, errs[0].Msg, "password must name a secret")
}

func TestFleet_SSHUserNames(t *testing.T) {
	t.Parallel()
	for user, ok := range map[string]bool{"deploy": true, "app_user": true, "deploy:staff": false, "1000:1000": false, "-oProxyCommand": false} {
		fleet := "servers:\n  web-1: {host: 10.0.0.1, user: \"" + user + "\"}\n"
		_, errs := planIn(t, map[string]string{"fleet.yml": fleet, "services/app.yml": svc("")}, planner.Input{})
		if ok {
			require.Nil(t, errs, user)
		} else {
			require.ErrorContains(t, errs, "is not an SSH user name", user)
		}
	}
}
