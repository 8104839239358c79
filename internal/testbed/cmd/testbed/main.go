// Command testbed starts bosun's test servers for a person to try bosun by
// hand (`make testbed`), and removes them (`make testbed-down`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bosunhq/bosun/internal/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	if len(args) > 0 && args[0] == "image" {
		if err := testbed.EnsureDocker(ctx, logf); err != nil {
			fmt.Fprintln(os.Stderr, "testbed:", err)
			return 1
		}
		ref, err := testbed.EnsureServerImage(ctx, logf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testbed:", err)
			return 1
		}
		fmt.Println(ref)
		return 0
	}
	return 2
}
