package planner_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

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
			if !errors.As(err, &cerrs) {
				t.Fatalf("want ConfigErrors, got %T %v", err, err)
			}
			if plan != nil || len(cerrs) == 0 {
				t.Fatal("an invalid commit must give errors and no plan")
			}
			for _, e := range cerrs {
				if e.File == "" || e.Msg == "" {
					t.Fatalf("error without file or message: %#v", e)
				}
			}
			return
		}
		var sb strings.Builder
		if _, err := plan.WriteTo(&sb); err != nil {
			t.Fatal(err)
		}
		if err := plan.WriteMarkdown(&sb); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sb.String(), "fuzz-s3cr3t-value") {
			t.Fatal("the secret value reached the plan")
		}
		for _, c := range plan.Changes {
			if c.Desired == nil || c.Version != c.Desired.Version() {
				t.Fatalf("%s: version %q does not match its spec", c.Target, c.Version)
			}
		}
	})
}
