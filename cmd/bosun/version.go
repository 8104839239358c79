package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=…"; without it
// bosun reports the VCS revision the binary was built from.
var version = ""

func init() {
	register(&command{name: "version", summary: "print bosun's version", run: runVersion})
}

func runVersion(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("version", "bosun version", "Print the version of this bosun binary.", e)
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	fmt.Fprintln(e.stdout, "bosun", buildVersion())
	return 0, nil
}

// buildVersion is this binary's version: the -X value, else the VCS revision.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
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
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}
