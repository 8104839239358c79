package planner_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

// Why a real Kamal file does not plan. Every failing row of kamalReal names
// one, and an error of the file must show it.
const (
	kamalInvalid = "invalid for Kamal too"
	needsDest    = "needs a destination"
	// A setting that opens the server (a database port on every address,
	// the Docker socket, …) runs only with x-bosun.allow_dangerous.
	needsOptIn = "a dangerous setting needs an x-bosun opt-in"
	// Kamal 1 keys (traefik, healthcheck.path/port) get a message saying
	// what to write instead.
	kamal1 = "a Kamal 1 file"
)

func unsupported(feature string) string { return "not yet supported: " + feature }

// kamalCase is the expected outcome of one file of
// ../shared/fixtures/kamal-real: it plans (reason ""), or it fails for
// reason, and one of its errors contains match.
type kamalCase struct {
	reason, match string
	// erb is the operator's ERB variable list for this file, as
	// `bosun plan --erb-env` would pass it.
	erb map[string]string
	// optIn is the x-bosun.allow_dangerous a needsOptIn file plans with,
	// once added to it.
	optIn string
}

var kamalOK = kamalCase{}

// kamalReal is the table: one row per file. A destination file
// (NAME__deploy.DEST.yml) is planned merged over its base
// (NAME__deploy.yml) with that destination; a base file is planned alone.
var kamalReal = map[string]kamalCase{
	"0jonjo__alljobs__deploy.yml":                  kamalOK,
	"0xRichardH__sqlite_backup__deploy.yml":        kamalOK,
	"1klap__railsguru-web__deploy.yml":             kamalOK,
	"Halvanhelv__solidtime__deploy.yml":            {reason: needsDest, match: "role web has no hosts"},
	"Halvanhelv__solidtime__deploy.production.yml": kamalOK,
	"OscarSwanros__diveShopOS__deploy.yml":         kamalOK,
	"TelosLabs__giving-connection__deploy.yml":     {reason: needsDest, match: "servers is missing"},
	// The destination's hosts are placeholders (REPLACE_WITH_...).
	"TelosLabs__giving-connection__deploy.production.yml": {reason: kamalInvalid, match: `unknown host "REPLACE_WITH_PRODUCTION_DROPLET_IP"`},
	"adrienpoly__rubyvideo__deploy.yml":                   {reason: needsOptIn, match: "7700:7700 is dangerous", optIn: "public-port"},
	"alco-company__mortimer-bellis__deploy.yml":           kamalOK,
	"basecamp__fizzy__deploy.yml":                         kamalOK,
	"basecamp__fizzy__deploy.staging.yml":                 {reason: needsOptIn, match: "5001:5001 is dangerous", optIn: "public-port"},
	"coat__teamdraft__deploy.yml":                         kamalOK,
	"datocms__astro-website__deploy.yml":                  kamalOK,
	// registry.password runs a shell command (%x(...)).
	"dimagi-rad__scout__deploy.yml": {reason: unsupported("ERB beyond ENV lookups"), match: "ERB is not run; only ENV lookups are supported",
		erb: map[string]string{"SCOUT_EC2_IP": "10.0.0.5", "SCOUT_ECR_REGISTRY": "123456789012.dkr.ecr.us-east-1.amazonaws.com", "SCOUT_REDIS_ENDPOINT": "redis.internal"}},
	"dreikanter__f2__deploy.yml":    kamalOK,
	"feather-page__cms__deploy.yml": kamalOK,
	// APP_VERSION runs git in backticks, RUBY_VERSION reads a file.
	"geeksforsocialchange__PlaceCal__deploy.yml": {reason: unsupported("ERB beyond ENV lookups"), match: "ERB is not run; only ENV lookups are supported"},
	"geeksforsocialchange__PlaceCal__deploy.production.yml": {reason: unsupported("ERB beyond ENV lookups"), match: "ERB is not run; only ENV lookups are supported",
		erb: map[string]string{"PRODUCTION_HOST": "placecal.example.org"}},
	// A Kamal 1 file: traefik, and the Kamal 1 healthcheck.
	"iamp-org__iamp__deploy.yml":            {reason: needsDest, match: "servers is missing"},
	"iamp-org__iamp__deploy.production.yml": {reason: kamal1, match: "traefik is Kamal 1's proxy"},
	"lnu-norge__lokaler.lnu.no__deploy.yml": {reason: needsOptIn, match: "5432:5432 is dangerous", optIn: "public-port"},
	"rbriski__force__deploy.yml":            {reason: needsDest, match: "this file needs a destination"},
}

// kamalFixtures is ../shared/fixtures/kamal-real beside the module root.
func kamalFixtures(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "no go.mod above the test")
		dir = parent
	}
	fx := filepath.Join(dir, "..", "shared", "fixtures", "kamal-real")
	if _, err := os.Stat(fx); err != nil {
		require.NotEqual(t, "1", os.Getenv("BOSUN_TEST_REQUIRE"), "the Kamal fixtures are missing: %v", err)
		t.Skipf("the Kamal fixtures are missing (%v): check out shared/ beside the repository", err)
	}
	return fx
}

// TestKamalReal_Fixtures validates and plans every real Kamal file laid out
// as docs/config.md tells a Kamal user (fleet.yml with no servers, the
// deploy file as services/NAME.yml, a destination file as
// services/NAME.DEST.yml) and checks each outcome against kamalReal.
func TestKamalReal_Fixtures(t *testing.T) {
	t.Parallel()
	dir := kamalFixtures(t)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var files []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".yml") {
			files = append(files, e.Name())
		}
	}
	for name := range kamalReal {
		require.Contains(t, files, name, "a row of kamalReal names a file that is not there")
	}
	var accepted []string
	for _, f := range files {
		want, ok := kamalReal[f]
		require.True(t, ok, "%s has no row in kamalReal: add its expected outcome", f)
		if t.Run(f, func(t *testing.T) { checkKamalCase(t, dir, f, want) }) && want.reason == "" {
			accepted = append(accepted, f)
		}
	}
	t.Logf("bosun plans %d of %d real Kamal files", len(accepted), len(files))
}

func checkKamalCase(t *testing.T, dir, file string, want kamalCase) {
	parts := strings.Split(file, "__")
	require.Len(t, parts, 3, "fixture names are OWNER__REPO__deploy[.DEST].yml")
	svcName := strings.ReplaceAll(strings.ToLower(parts[1]), ".", "-")
	fsys := fstest.MapFS{"fleet.yml": {Data: []byte("servers: {}\n")}}
	in := planner.Input{Repo: "kamal-real", Commit: "c", ERBEnv: want.erb}
	base := file
	if dest := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSuffix(parts[2], ".yml"), "deploy"), "."); dest != "" {
		in.Destination = dest
		base = parts[0] + "__" + parts[1] + "__deploy.yml"
		body, err := os.ReadFile(filepath.Join(dir, file))
		require.NoError(t, err)
		fsys["services/"+svcName+"."+dest+".yml"] = &fstest.MapFile{Data: body}
	}
	body, err := os.ReadFile(filepath.Join(dir, base))
	require.NoError(t, err)
	fsys["services/"+svcName+".yml"] = &fstest.MapFile{Data: body}
	if want.reason == needsOptIn {
		defer func() {
			// The one line a user adds makes the file plan.
			if t.Failed() {
				return
			}
			fsys["services/"+svcName+".yml"] = &fstest.MapFile{Data: append(append([]byte{}, body...), "\nx-bosun: {allow_dangerous: ["+want.optIn+"]}\n"...)}
			_, err := planner.New(planner.Config{SecretKey: []byte("k")}).Plan(t.Context(), fsys, in)
			require.NoError(t, err, "%s should plan with x-bosun.allow_dangerous: [%s]", file, want.optIn)
		}()
	}

	p := planner.New(planner.Config{SecretKey: []byte("k")})
	plan, err := p.Plan(t.Context(), fsys, in)
	if want.reason == "" {
		require.NoError(t, err, "%s should plan", file)
		var txt, md bytes.Buffer
		_, err = plan.WriteTo(&txt)
		require.NoError(t, err)
		require.NoError(t, plan.WriteMarkdown(&md))
		require.NotEmpty(t, plan.Changes, "%s plans no target", file)
		return
	}
	var cerrs planner.ConfigErrors
	require.True(t, errors.As(err, &cerrs), "%s should fail (%s), got %v", file, want.reason, err)
	msgs := make([]string, len(cerrs))
	for i, e := range cerrs {
		msgs[i] = e.Error()
	}
	require.True(t, slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, want.match) }),
		"%s should fail because it is %s (an error containing %q); its errors:\n%s", file, want.reason, want.match, strings.Join(msgs, "\n"))
}
