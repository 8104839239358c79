package vulndb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuild_v1Layout(t *testing.T) {
	out := filepath.Join(t.TempDir(), "db")
	if err := Build("testdata/osv", out); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got, want := read("index/db.json"), `{"modified":"2099-01-02T03:04:05Z"}`; got != want {
		t.Errorf("index/db.json = %s, want %s", got, want)
	}
	// One row per module, sorted; an entry is listed once per module however
	// many of its affected blocks name that module.
	want := `[{"path":"example.com/a","vulns":[` +
		`{"id":"GO-2099-0001","modified":"2099-01-02T03:04:05Z"},` +
		`{"id":"GO-2099-0002","modified":"2098-06-07T08:09:10Z"}]},` +
		`{"path":"stdlib","vulns":[{"id":"GO-2099-0001","modified":"2099-01-02T03:04:05Z"}]}]`
	if got := read("index/modules.json"); got != want {
		t.Errorf("index/modules.json =\n%s\nwant\n%s", got, want)
	}
	for _, id := range []string{"GO-2099-0001", "GO-2099-0002"} {
		src, err := os.ReadFile(filepath.Join("testdata/osv", id+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := read("ID/" + id + ".json"); got != string(src) {
			t.Errorf("ID/%s.json differs from its OSV entry", id)
		}
	}
}

func TestBuild_rejectsEntryNotNamedByItsID(t *testing.T) {
	src := t.TempDir()
	b, err := os.ReadFile("testdata/osv/GO-2099-0002.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "GO-2099-0003.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	err = Build(src, filepath.Join(t.TempDir(), "db"))
	if err == nil || !strings.Contains(err.Error(), "does not match its file name") {
		t.Fatalf("Build = %v, want an error naming the mismatch", err)
	}
}

func TestEnsure_usesCachedVersion(t *testing.T) {
	cache := t.TempDir()
	// A version the proxy does not have: Ensure must not try to fetch it
	// when its database is already in the cache.
	version := "v0.0.0-20000101000000-000000000000"
	if err := Build("testdata/osv", filepath.Join(cache, version)); err != nil {
		t.Fatal(err)
	}
	dir, err := Ensure(context.Background(), version, cache)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(cache, version) {
		t.Errorf("Ensure = %s, want %s", dir, filepath.Join(cache, version))
	}
}

func TestEnsure_rejectsVersionThatIsAPath(t *testing.T) {
	for _, v := range []string{"", "latest", "v1/../../x"} {
		if _, err := Ensure(context.Background(), v, t.TempDir()); err == nil {
			t.Errorf("Ensure(%q) succeeded, want an error", v)
		}
	}
}
