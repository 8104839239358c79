package planner_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/plan and examples")

// goldenKey is the secret key of every golden test: fixed, so versions and
// hashes are stable.
var goldenKey = []byte("bosun-golden-test-key")

// goldenSecrets are the secret values the golden cases plan with.
func goldenSecrets(t *testing.T, dir string) planner.SecretSource {
	t.Helper()
	var files []string
	if _, err := os.Stat(filepath.Join(dir, "secrets.env")); err == nil {
		files = append(files, filepath.Join(dir, "secrets.env"))
	}
	src, err := planner.LoadSecrets(nil, planner.SecretSources{Files: files})
	require.NoError(t, err)
	return src
}

// checkGolden compares got with the file at path, or rewrites it under -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "read golden file (run go test ./planner -update to create it)")
	if string(want) != string(got) {
		_ = os.WriteFile(path+".got", got, 0o644)
	}
	require.Equal(t, string(want), string(got), "golden file %s (the output is in %s.got)", path, path)
}

// TestPlan_Golden plans each testdata/plan/<case>/repo against its
// applied.json (and holds.json) and compares the text and Markdown
// renderings, or the errors of an invalid commit, with want.*.
func TestPlan_Golden(t *testing.T) {
	cases, err := filepath.Glob("testdata/plan/*")
	require.NoError(t, err)
	require.NotEmpty(t, cases)
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			in := planner.Input{Repo: "fleet", Commit: "0123456789abcdef0123456789abcdef01234567"}
			readJSON(t, filepath.Join(dir, "applied.json"), &in.Applied)
			readJSON(t, filepath.Join(dir, "holds.json"), &in.Holds)
			if b, err := os.ReadFile(filepath.Join(dir, "destination")); err == nil {
				in.Destination = strings.TrimSpace(string(b))
			}
			p := planner.New(planner.Config{Secrets: goldenSecrets(t, dir), SecretKey: goldenKey})
			plan, err := p.Plan(t.Context(), os.DirFS(filepath.Join(dir, "repo")), in)
			if _, statErr := os.Stat(filepath.Join(dir, "want.err")); statErr == nil || *update && err != nil {
				var cerrs planner.ConfigErrors
				require.True(t, errors.As(err, &cerrs), "want ConfigErrors, got %v", err)
				require.Nil(t, plan, "an invalid commit must not yield a plan")
				checkGolden(t, filepath.Join(dir, "want.err"), []byte(cerrs.Error()+"\n"))
				var md bytes.Buffer
				require.NoError(t, cerrs.WriteMarkdown(&md))
				checkGolden(t, filepath.Join(dir, "want.md"), md.Bytes())
				return
			}
			require.NoError(t, err)
			var txt, md bytes.Buffer
			_, err = plan.WriteTo(&txt)
			require.NoError(t, err)
			require.NoError(t, plan.WriteMarkdown(&md))
			checkGolden(t, filepath.Join(dir, "want.txt"), txt.Bytes())
			checkGolden(t, filepath.Join(dir, "want.md"), md.Bytes())
			for _, s := range []string{txt.String(), md.String()} {
				require.NotContains(t, s, "s3cr3t", "a secret value reached the plan")
				require.NotContains(t, s, "hmac-sha256", "a secret hash reached the plan")
			}
			js, err := json.Marshal(plan)
			require.NoError(t, err)
			require.NotContains(t, string(js), "s3cr3t")
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v), path)
}

// TestExamples_Plan loads examples/ through the real planner, so that the
// examples cannot rot: it must be valid and plan as examples/plan.golden.
func TestExamples_Plan(t *testing.T) {
	dir := filepath.Join("..", "examples")
	secrets, err := planner.LoadSecrets(func(name string) string {
		return "example-" + strings.ToLower(name)
	}, planner.SecretSources{AllEnv: true})
	require.NoError(t, err)
	p := planner.New(planner.Config{Secrets: secrets, SecretKey: goldenKey, RequireSecrets: true})
	plan, err := p.Plan(t.Context(), os.DirFS(dir), planner.Input{Repo: "examples", Commit: "0000000000000000000000000000000000000000"})
	require.NoError(t, err)
	var txt bytes.Buffer
	_, err = plan.WriteTo(&txt)
	require.NoError(t, err)
	checkGolden(t, filepath.Join("testdata", "examples.golden"), txt.Bytes())
}
