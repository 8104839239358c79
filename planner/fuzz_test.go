package planner_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

// FuzzLoad feeds arbitrary fleet.yml, service file and template text to the
// loader. It must never panic or hang; it returns a plan or ConfigErrors,
// every error has a file and a message, and no plan or error shows the
// secret value.
func FuzzLoad(f *testing.F) {
	f.Add(testFleet, svc("env: {secret: [KEY]}\n"), "")
	f.Add(testFleet, "template: t\nvars: {name: a, servers: [web-1]}\n", "service: {{ .name }}\nimage: a/b:1\nservers: {{ toJson .servers }}\n")
	f.Add(testFleet, "service: db\nimage: postgres:16\nprimary_role: db\nservers:\n  db: {hosts: [db-1], proxy: false}\nvolumes: [/srv:/data]\nhealthcheck: {cmd: pg_isready}\naccessories:\n  c: {image: redis:7, host: web-1, port: 6379}\n", "")
	f.Add("servers:\n  a: &x {host: 10.0.0.1}\n  b: *x\n", "x-a: &a {A: b}\nservice: s\nimage: a/b:1\nservers: [a, b]\nenv: {<<: *a}\n", "")
	f.Fuzz(func(t *testing.T, fleet, service, tmpl string) {
		fsys := fstest.MapFS{
			"fleet.yml":            {Data: []byte(fleet)},
			"services/app.yml":     {Data: []byte(service)},
			"templates/t.yml.tmpl": {Data: []byte(tmpl)},
		}
		p := planner.New(planner.Config{Secrets: mapSecrets{"KEY": "fuzz-s3cr3t-value"}, SecretKey: []byte("k")})
		plan, err := p.Plan(t.Context(), fsys, planner.Input{Repo: "r", Commit: "c"})
		if err != nil {
			var cerrs planner.ConfigErrors
			require.ErrorAs(t, err, &cerrs)
			require.Nil(t, plan, "an invalid commit must give no plan")
			require.NotEmpty(t, cerrs, "an invalid commit must give errors")
			for _, e := range cerrs {
				require.NotEmpty(t, e.File, "error without a file: %#v", e)
				require.NotEmpty(t, e.Msg, "error without a message: %#v", e)
			}
			return
		}
		var sb strings.Builder
		_, err = plan.WriteTo(&sb)
		require.NoError(t, err)
		require.NoError(t, plan.WriteMarkdown(&sb))
		require.NotContains(t, sb.String(), "fuzz-s3cr3t-value", "the secret value reached the plan")
		for _, c := range plan.Changes {
			require.NotNil(t, c.Desired, "%s has no spec", c.Target)
			require.Equal(t, c.Desired.Version(), c.Version, "%s: version does not match its spec", c.Target)
		}
	})
}
