package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version and commit are stamped at build time by `make build` and `make
// release`: -ldflags "-X main.version=v1.2.3 -X main.revision=abc…". Without
// them (go install, go build) they come from the Go build info.
var version, revision = "", ""

func init() {
	register(&command{name: "version", summary: "print bosun's version", run: runVersion})
}

func runVersion(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("version", "bosun version", `
Print this binary's version, the commit it was built from, and the Go
version and platform it was built with. A release build says its tag; one
from go install says the module version; one built from a checkout says the
VCS revision ("-dirty" with uncommitted changes).`, e)
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	fmt.Fprintf(e.stdout, "bosun %s (commit %s, %s %s/%s)\n", buildVersion(), buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0, nil
}

// buildVersion is this binary's version: the -X value, else the module
// version from the build info (go install …@v1.2.3 gives v1.2.3; a build
// in a checkout a pseudo-version), else "devel". Only release versions
// have a published proxy image (executor.Config.Version).
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "" || info.Main.Version == "(devel)" {
		return "devel"
	}
	return info.Main.Version
}

// buildCommit is the commit the binary was built from: the -X value, else
// vcs.revision from the build info, else the revision in a pseudo-version,
// else "unknown".
func buildCommit() string {
	if revision != "" {
		return revision
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		// v0.0.0-20261203184408-6cf6efe01234: the last part is the revision.
		v := strings.TrimSuffix(info.Main.Version, "+dirty")
		if i := strings.LastIndexByte(v, '-'); i > 0 && len(v)-i-1 == 12 {
			rev = v[i+1:]
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
