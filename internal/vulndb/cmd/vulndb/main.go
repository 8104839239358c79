// Command vulndb runs govulncheck for `make lint` against a local Go
// vulnerability database built from one golang.org/x/vulndb version (see
// package internal/vulndb), since vuln.go.dev cannot be reached:
//
//	vulndb db -version v0.0.0-...      prints the database's folder, building it when not cached
//	vulndb check -version v0.0.0-... -govulncheck golang.org/x/vuln/cmd/govulncheck@v1.9.0 \
//	    -accepted .govulncheck-accepted ./...
//
// check runs govulncheck (through `go run`) on the packages, prints every
// vulnerability the code calls, and fails when one is not in the accepted
// list.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"

	"github.com/bosunhq/bosun/internal/vulndb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "db" && args[0] != "check") {
		return fmt.Errorf("usage: vulndb db|check [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	version := fs.String("version", "", "golang.org/x/vulndb version to build the database from")
	cache := fs.String("cache", "", "folder holding one database per version (default: bosun/vulndb in the user cache folder)")
	govulncheck := fs.String("govulncheck", "golang.org/x/vuln/cmd/govulncheck@v1.9.0", "check: govulncheck to go run, as package@version")
	acceptedPath := fs.String("accepted", "", "check: file of accepted vulnerability IDs, each with its reason")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *version == "" {
		return fmt.Errorf("-version is required")
	}
	dir := *cache
	if dir == "" {
		var err error
		if dir, err = vulndb.CacheDir(); err != nil {
			return err
		}
	}
	db, err := vulndb.Ensure(ctx, *version, dir)
	if err != nil {
		return err
	}
	if args[0] == "db" {
		fmt.Println(db)
		return nil
	}
	accepted := map[string]string{}
	if *acceptedPath != "" {
		if accepted, err = vulndb.ReadAccepted(*acceptedPath); err != nil {
			return err
		}
	}
	patterns := fs.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", *govulncheck, "-db", "file://" + db, "-format", "json"}, patterns...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("govulncheck failed (%v)", err)
		}
		return err
	}
	return vulndb.Check(&out, os.Stdout, accepted)
}
