package planner_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

// TestPlanner_Templates checks rendering, the function set and where
// template mistakes are reported.
func TestPlanner_Templates(t *testing.T) {
	t.Parallel()
	tmpl := `service: {{ .name }}
image: {{ .image | required "image is required" }}
servers: {{ toJson .servers }}
env:
  clear:
    QUOTED: {{ quote .motto }}
    LEVEL: {{ index . "level" | default "info" | upper }}
    HOSTS: {{ join "," .servers }}
    LOWER: {{ lower "ABC" }}
    TRIMMED: {{ trim "  x  " }}
    REPLACED: {{ replace "-" "_" .name }}
labels:{{ toYaml .labels | nindent 2 }}
`
	tests := []struct {
		name, tmpl, file, wantErr string
		check                     func(t *testing.T, env map[string]string, labels map[string]string)
	}{
		{name: "renders", tmpl: tmpl, file: "template: app\nvars: {name: my-app, image: a/b:1, servers: [web-1, web-2], motto: 'say \"hi\": now', labels: {team: core}}\n",
			check: func(t *testing.T, env, labels map[string]string) {
				require.Equal(t, `say "hi": now`, env["QUOTED"])
				require.Equal(t, "INFO", env["LEVEL"])
				require.Equal(t, "web-1,web-2", env["HOSTS"])
				require.Equal(t, "abc", env["LOWER"])
				require.Equal(t, "x", env["TRIMMED"])
				require.Equal(t, "my_app", env["REPLACED"])
				require.Equal(t, map[string]string{"team": "core"}, labels)
			}},
		{name: "default is overridden", tmpl: tmpl, file: "template: app\nvars: {name: a, image: a/b:1, servers: [web-1], motto: m, level: debug, labels: {}}\n",
			check: func(t *testing.T, env, _ map[string]string) { require.Equal(t, "DEBUG", env["LEVEL"]) }},
		{name: "missing var", tmpl: tmpl, file: "template: app\nvars: {name: a, image: a/b:1, servers: [web-1], labels: {}}\n",
			wantErr: `services/app.yml:1:11: templates/app.yml.tmpl needs var "motto" (line 6 column 21): add it under vars`},
		{name: "required", tmpl: tmpl, file: "template: app\nvars: {name: a, image: '', servers: [web-1], motto: m, labels: {}}\n",
			wantErr: "image is required"},
		{name: "unknown template", tmpl: tmpl, file: "template: ap\nvars: {}\n",
			wantErr: `services/app.yml:1:11: template "ap" not found: there is no templates/ap.yml.tmpl (did you mean "app"?)`},
		{name: "template does not parse", tmpl: "service: {{ .name }\n", file: "template: app\n",
			wantErr: "templates/app.yml.tmpl:1:0: template does not parse: unexpected \"}\" in operand"},
		{name: "unknown key next to template", tmpl: tmpl, file: "template: app\nvars: {}\nimage: x\n",
			wantErr: `services/app.yml:3:1: templated service file: unknown key "image"`},
		{name: "error in a var points at the var", tmpl: tmpl, file: "template: app\nvars:\n  name: a\n  image: Bad/Image:1\n  servers: [web-1]\n  motto: m\n  labels: {}\n",
			wantErr: `services/app.yml:4:10: image: image "Bad/Image:1" is not a valid reference`},
		{name: "error in the template points at the template key", tmpl: tmpl + "bogus: 1\n", file: "template: app\nvars: {name: a, image: a/b:1, servers: [web-1], motto: m, labels: {}}\n",
			wantErr: `services/app.yml:1:11: service file: unknown key "bogus"; the keys allowed here are: `},
		{name: "runaway output is cut", tmpl: "{{ range 100000000 }}xxxxxxxxxxxxxxxx{{ end }}", file: "template: app\n",
			wantErr: "the rendered file is over 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan, errs := planFiles(t, map[string]string{"templates/app.yml.tmpl": tt.tmpl, "services/app.yml": tt.file}, nil)
			if tt.wantErr != "" {
				require.NotNil(t, errs)
				require.Contains(t, errs.Error(), tt.wantErr)
				return
			}
			require.Nil(t, errs)
			s := plan.Changes[0].Desired
			tt.check(t, s.Env, s.Labels)
		})
	}
}

// TestPlanner_TemplateChangeReplansUsers checks that a template change
// changes the version of every service that uses it and no other.
func TestPlanner_TemplateChangeReplansUsers(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"templates/t.yml.tmpl": "service: {{ .name }}\nimage: a/b:1\nservers: [web-1]\nproxy: {host: {{ .name }}.example.com}\n",
		"services/a.yml":       "template: t\nvars: {name: a}\n",
		"services/b.yml":       "template: t\nvars: {name: b}\n",
		"services/c.yml":       "service: c\nimage: a/b:1\nservers: [web-2]\n",
	}
	before, errs := planFiles(t, files, nil)
	require.Nil(t, errs)
	files["templates/t.yml.tmpl"] += "env: {NEW: '1'}\n"
	after, errs := planFiles(t, files, nil)
	require.Nil(t, errs)
	for i, c := range after.Changes {
		changed := c.Version != before.Changes[i].Version
		require.Equal(t, c.Service != "c", changed, "%s", c.Target)
	}
}

// TestPlanner_CacheFollowsChanges plans with one Planner (which reuses the
// parse of unchanged files) and checks it sees template, file and fleet
// changes exactly as a fresh Planner does.
func TestPlanner_CacheFollowsChanges(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"templates/t.yml.tmpl": "service: {{ .name }}\nimage: a/b:1\nservers: [web-1]\nproxy: {host: {{ .name }}.example.com}\n",
		"services/a.yml":       "template: t\nvars: {name: a}\n",
		"services/c.yml":       "service: c\nimage: a/b:1\nservers: [web-2]\nbuilder: {}\n",
	}
	p := planner.New(planner.Config{SecretKey: []byte("k")})
	steps := []func(){
		func() {},
		func() { files["templates/t.yml.tmpl"] += "env: {NEW: '1'}\n" },
		func() { files["services/c.yml"] = strings.Replace(files["services/c.yml"], "a/b:1", "a/b:2", 1) },
		func() { files["fleet.yml"] = strings.Replace(testFleet, "10.0.0.12", "10.0.0.99", 1) },
		func() { files["services/c.yml"] = "service: c\nimage: Bad\nservers: [web-2]\n" },
		func() {},
	}
	for i, step := range steps {
		step()
		got, gotErr := p.Plan(t.Context(), mapFS(files), planner.Input{Repo: "r", Commit: "c"})
		want, wantErr := planner.New(planner.Config{SecretKey: []byte("k")}).Plan(t.Context(), mapFS(files), planner.Input{Repo: "r", Commit: "c"})
		require.Equal(t, wantErr, gotErr, "step %d", i)
		require.Equal(t, want, got, "step %d", i)
	}
}
