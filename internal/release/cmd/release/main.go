// Command release builds bosun's release artifacts (`make release`), or
// pushes the proxy image of a built release (`make release-push`).
//
//	release build -version v0.4.0 -revision abc123 -out dist
//	release push -layout dist/bosun-proxy-v0.4.0-oci -ref ghcr.io/bosunhq/bosun-proxy:v0.4.0
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"

	"github.com/bosunhq/bosun/internal/release"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: release build|push [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	switch args[0] {
	case "build":
		version := fs.String("version", "", "version to stamp, e.g. v0.4.0")
		rev := fs.String("revision", "", "commit to stamp")
		out := fs.String("out", "dist", "output folder")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		a, err := release.Build(ctx, release.Options{Version: *version, Revision: *rev, Out: *out, Log: os.Stderr})
		if err != nil {
			return err
		}
		var files []string
		for _, p := range a.Binaries {
			files = append(files, p)
		}
		sort.Strings(files)
		for _, f := range append(files, a.Checksums, a.ProxyOCI) {
			fmt.Println(f)
		}
		return nil
	case "push":
		dir := fs.String("layout", "", "OCI layout written by release build")
		ref := fs.String("ref", "", "where to push the proxy image, e.g. ghcr.io/bosunhq/bosun-proxy:v0.4.0")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *dir == "" || *ref == "" {
			return fmt.Errorf("push needs -layout and -ref")
		}
		return release.Push(ctx, *dir, *ref)
	}
	return fmt.Errorf("unknown subcommand %q", args[0])
}
