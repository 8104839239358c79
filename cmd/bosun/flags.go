package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// newFlagSet makes a flag set whose --help prints the synopsis, the
// description and the flags to stdout.
func newFlagSet(name, synopsis, description string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: %s\n\n%s\n", synopsis, strings.TrimSpace(description))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(out, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args. It returns code -1 when the command should go on;
// otherwise the command returns (code, err) at once: 0 after --help, 1 with a
// usage error.
func parseFlags(fs *flag.FlagSet, args []string, e env) (int, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return 0, nil
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 1, nil // the flag package already printed the error and usage
	}
	return -1, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// flagSet is the part of *flag.FlagSet that shared flag groups register on.
type flagSet interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
	IntVar(p *int, name string, value int, usage string)
	Var(v flag.Value, name, usage string)
}
