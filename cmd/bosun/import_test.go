package main

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
)

// kamalFixtureDir is ../shared/fixtures/kamal-real beside the module root.
func kamalFixtureDir(t *testing.T) string {
	t.Helper()
	fx, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "fixtures", "kamal-real"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fx); err != nil {
		if os.Getenv("BOSUN_TEST_REQUIRE") == "1" {
			t.Fatalf("the Kamal fixtures are missing: %v", err)
		}
		t.Skipf("the Kamal fixtures are missing (%v): check out shared/ beside the repository", err)
	}
	return fx
}

// importCase is what importing one real Kamal project gives: the forms
// (destinations, "" for none) whose output validates and plans, or a
// refusal as a Kamal 1 project. Every other form must fail bosun validate
// too; planner's TestKamalReal_Fixtures says why each one fails.
type importCase struct {
	valid  []string
	kamal1 bool
}

var importCases = map[string]importCase{
	"0jonjo__alljobs":                {valid: []string{""}},
	"0xRichardH__sqlite_backup":      {valid: []string{""}},
	"1klap__railsguru-web":           {valid: []string{""}},
	"Halvanhelv__solidtime":          {valid: []string{"production"}}, // the base needs its destination
	"OscarSwanros__diveShopOS":       {valid: []string{""}},
	"TelosLabs__giving-connection":   {}, // placeholder hosts
	"adrienpoly__rubyvideo":          {}, // a public port needs the opt-in
	"alco-company__mortimer-bellis":  {valid: []string{""}},
	"basecamp__fizzy":                {valid: []string{""}}, // staging publishes ports
	"coat__teamdraft":                {valid: []string{""}},
	"datocms__astro-website":         {valid: []string{""}},
	"dimagi-rad__scout":              {}, // ERB runs a command
	"dreikanter__f2":                 {valid: []string{""}},
	"feather-page__cms":              {valid: []string{""}},
	"geeksforsocialchange__PlaceCal": {}, // ERB runs git
	"iamp-org__iamp":                 {kamal1: true},
	"lnu-norge__lokaler.lnu.no":      {}, // a public port needs the opt-in
	"rbriski__force":                 {}, // needs a destination it does not have
}

// TestImportKamal_realProjects imports every project of the real Kamal
// files (its deploy.yml with its destination files, laid out as in a Kamal
// project), then runs bosun validate and bosun plan on the output for
// every form: the accepted ones validate and plan, the others fail
// validate as the import said, and a Kamal 1 project is refused.
func TestImportKamal_realProjects(t *testing.T) {
	fx := kamalFixtureDir(t)
	ents, err := os.ReadDir(fx)
	if err != nil {
		t.Fatal(err)
	}
	projects := map[string][]string{} // OWNER__REPO -> destinations
	for _, e := range ents {
		parts := strings.Split(e.Name(), "__")
		if len(parts) != 3 || !strings.HasSuffix(e.Name(), ".yml") {
			continue
		}
		dest := strings.TrimPrefix(strings.TrimSuffix(strings.TrimPrefix(parts[2], "deploy"), ".yml"), ".")
		key := parts[0] + "__" + parts[1]
		projects[key] = append(projects[key], dest)
	}
	for key := range importCases {
		if _, ok := projects[key]; !ok {
			t.Errorf("importCases names %s, which has no files", key)
		}
	}
	accepted := 0
	for key, dests := range projects {
		want, ok := importCases[key]
		if !ok {
			t.Errorf("%s has no row in importCases: add its expected outcome", key)
			continue
		}
		t.Run(key, func(t *testing.T) {
			proj := filepath.Join(t.TempDir(), "project")
			for _, d := range dests {
				name := "deploy.yml"
				if d != "" {
					name = "deploy." + d + ".yml"
				}
				copyFile(t, filepath.Join(fx, key+"__"+name), filepath.Join(proj, "config", name))
			}
			out := filepath.Join(t.TempDir(), "config")
			code, stdout, stderr := runCLI(t, nil, "import", "kamal", "--out", out, proj)
			if want.kamal1 {
				if code != 1 || !strings.Contains(stderr, "is a Kamal 1 project; nothing was written") || !strings.Contains(stderr, "traefik is Kamal 1's proxy") {
					t.Fatalf("a Kamal 1 project: exit %d, want 1 and the Kamal 1 message\n%s%s", code, stdout, stderr)
				}
				if _, err := os.Stat(out); err == nil {
					t.Fatalf("a refused import wrote %s", out)
				}
				return
			}
			wantCode := 0
			for _, d := range dests {
				if !slices.Contains(want.valid, d) && (d != "" || len(dests) == 1) {
					wantCode = 1
				}
			}
			if code != wantCode || stderr != "" {
				t.Fatalf("import: exit %d, want %d\n%s%s", code, wantCode, stdout, stderr)
			}
			files := readTree(t, out)
			if _, ok := files["fleet.yml"]; !ok {
				t.Fatalf("no fleet.yml written: %v", slices.Sorted(maps.Keys(files)))
			}
			testbed.Commit(t, out, "import", files)
			for _, d := range dests {
				args := []string{"validate"}
				plan := []string{"plan", "--repo", out, "--state", "sqlite:///" + filepath.Join(t.TempDir(), "state.db")}
				if d != "" {
					args = append(args, "--destination", d)
					plan = append(plan, "--destination", d)
				}
				vcode, vout, _ := runCLI(t, nil, append(args, out)...)
				if !slices.Contains(want.valid, d) {
					if vcode != 1 {
						t.Errorf("destination %q: bosun validate of the output: exit %d, want 1 (the import reported errors)", d, vcode)
					}
					// Every error validate prints, the import printed.
					for _, l := range strings.Split(strings.TrimSpace(vout), "\n") {
						if !strings.Contains(stdout, l) {
							t.Errorf("destination %q: the import does not report %q\n%s", d, l, stdout)
						}
					}
					continue
				}
				accepted++
				if vcode != 0 {
					t.Errorf("destination %q: bosun validate of the output: exit %d\n%s", d, vcode, vout)
				}
				if pcode, pout, perr := runCLI(t, nil, plan...); pcode != 2 || !strings.Contains(pout, "create") {
					t.Errorf("destination %q: bosun plan of the output: exit %d, want 2 (creates)\n%s%s", d, pcode, pout, perr)
				}
			}
		})
	}
	t.Logf("the output of %d imported forms validates and plans", accepted)
}

// TestImportKamal_project imports a Kamal project with a destination,
// secrets, hooks and ERB: the files are copied unchanged, the report names
// the secrets (never a value), the hooks, the ERB variables and the ignored
// keys; a second import into the same folder keeps fleet.yml and never
// overwrites a service file.
func TestImportKamal_project(t *testing.T) {
	proj := t.TempDir()
	deploy := `service: shop
image: ghcr.io/acme/shop:v1
servers:
  web: [10.0.0.5]
  job:
    hosts: [10.0.0.5]
    cmd: bin/jobs
    proxy: false
proxy:
  host: <%= ENV.fetch("SHOP_HOST", "shop.example.com") %>
registry:
  server: ghcr.io
  username: acme
  password: [KAMAL_REGISTRY_PASSWORD]
env:
  secret: [RAILS_MASTER_KEY, "DATABASE_URL:SHOP_DATABASE_URL"]
builder:
  arch: amd64
accessories:
  db:
    image: postgres:16
    host: 10.0.0.5
    directories: ["data:/var/lib/postgresql/data"]
`
	files := map[string]string{
		"config/deploy.yml":             deploy,
		"config/deploy.staging.yml":     "servers:\n  web: [10.0.0.9]\n  job: {hosts: [10.0.0.9], cmd: bin/jobs, proxy: false}\naccessories:\n  db: {host: 10.0.0.9}\n",
		"config/deploy.Bad.yml":         "servers: [10.0.0.7]\n",
		".kamal/secrets":                "KAMAL_REGISTRY_PASSWORD=$KAMAL_REGISTRY_PASSWORD\nRAILS_MASTER_KEY=$(cat config/master.key)\nSHOP_DATABASE_URL=postgres://u:hunter2-literal@db/shop\n",
		".kamal/secrets.staging":        "EXTRA_TOKEN=s3cr3t-staging\n",
		".kamal/hooks/pre-deploy":       "#!/bin/sh\necho hi\n",
		".kamal/hooks/pre-build.sample": "#!/bin/sh\n",
	}
	for f, body := range files {
		writeFile(t, filepath.Join(proj, f), body)
	}
	out := filepath.Join(t.TempDir(), "repo")
	code, stdout, stderr := runCLI(t, nil, "import", "kamal", "--out", out, proj)
	if code != 0 || stderr != "" {
		t.Fatalf("import: exit %d\n%s%s", code, stdout, stderr)
	}
	got := readTree(t, out)
	if got["services/shop.yml"] != deploy || got["services/shop.staging.yml"] != files["config/deploy.staging.yml"] {
		t.Errorf("the deploy files are not copied unchanged: %v", slices.Sorted(maps.Keys(got)))
	}
	if len(got) != 3 {
		t.Errorf("want fleet.yml and two service files, got %v", slices.Sorted(maps.Keys(got)))
	}
	for _, secret := range []string{"hunter2-literal", "s3cr3t-staging", "cat config/master.key"} {
		for f, body := range got {
			if strings.Contains(body, secret) {
				t.Errorf("%s holds a secrets file value %q", f, secret)
			}
		}
		if strings.Contains(stdout, secret) {
			t.Errorf("the report shows a secrets file value %q:\n%s", secret, stdout)
		}
	}
	for _, want := range []string{
		"wrote  services/shop.yml from config/deploy.yml",
		"wrote  services/shop.staging.yml from config/deploy.staging.yml",
		"without a destination: valid, 3 target(s)",
		"destination staging: valid, 3 target(s)",
		`destination "Bad" is not a name bosun takes`,
		"RAILS_MASTER_KEY             used by the service; .kamal/secrets:2: a command, which bosun does not run",
		"SHOP_DATABASE_URL            used by the service; .kamal/secrets:3: a value written in the file (not copied)",
		"KAMAL_REGISTRY_PASSWORD      used by the service; .kamal/secrets:1: another environment variable",
		"not used by the service files (Kamal's builder or hooks?): EXTRA_TOKEN",
		".kamal/hooks/pre-deploy: Kamal's hooks are not run",
		"pass --erb-env for SHOP_HOST",
		"builder is ignored",
		"images are not built",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the report lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "pre-build.sample") {
		t.Errorf("a hook sample is reported as a hook:\n%s", stdout)
	}

	// The same project again: nothing is overwritten.
	code, _, stderr = runCLI(t, nil, "import", "kamal", "--out", out, proj)
	if code != 1 || !strings.Contains(stderr, "already has services/shop.staging.yml, services/shop.yml: nothing was written") {
		t.Errorf("a second import of the same service: exit %d, want 1 and the refusal\n%s", code, stderr)
	}
	// Another project beside it keeps fleet.yml as it is.
	writeFile(t, filepath.Join(out, "fleet.yml"), "servers: {}\n# mine\n")
	other := filepath.Join(t.TempDir(), "other")
	writeFile(t, filepath.Join(other, "config", "deploy.yml"), "service: blog\nimage: ghcr.io/acme/blog:v2\nservers: [10.0.0.6]\n")
	code, stdout, stderr = runCLI(t, nil, "import", "kamal", "--out", out, filepath.Join(other, "config", "deploy.yml"))
	if code != 0 || !strings.Contains(stdout, "kept   fleet.yml") {
		t.Errorf("import of a second project: exit %d\n%s%s", code, stdout, stderr)
	}
	if got := readTree(t, out); got["fleet.yml"] != "servers: {}\n# mine\n" || got["services/blog.yml"] == "" {
		t.Errorf("the second import changed fleet.yml or did not write blog: %v", got)
	}
	if code, vout, _ := runCLI(t, nil, "validate", out); code != 0 {
		t.Errorf("validate of the repository with both services: exit %d\n%s", code, vout)
	}
}

// TestImportKamal_usage: a project without config/deploy.yml and a bad
// service name are refused, saying what is missing.
func TestImportKamal_usage(t *testing.T) {
	empty := t.TempDir()
	if code, _, stderr := runCLI(t, nil, "import", "kamal", "--out", t.TempDir(), empty); code != 1 || !strings.Contains(stderr, "has no config/deploy.yml") {
		t.Errorf("a folder without a deploy file: exit %d\n%s", code, stderr)
	}
	writeFile(t, filepath.Join(empty, "config", "deploy.yml"), "service: Shop App\nimage: x\n")
	if code, _, stderr := runCLI(t, nil, "import", "kamal", "--out", t.TempDir(), empty); code != 1 || !strings.Contains(stderr, "is not a name bosun takes") {
		t.Errorf("a bad service name: exit %d\n%s", code, stderr)
	}
	if code, _, _ := runCLI(t, nil, "import", "terraform", empty); code != 1 {
		t.Errorf("an unknown import source: exit %d, want 1", code)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(data))
}

// readTree returns every file under dir (outside .git) by slash path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = string(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
