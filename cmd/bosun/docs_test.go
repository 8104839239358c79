package main

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md from the commands' help")

// subcommands are the commands that have subcommands, with them.
var subcommands = map[string][]string{
	"proxy":  {"run", "deploy", "remove", "list"},
	"import": {"kamal"},
	"token":  {"create", "list", "revoke"},
}

// TestDocs_cli keeps docs/cli.md equal to what `bosun --help` and every
// `bosun COMMAND --help` print. Run with -update after changing a command.
func TestDocs_cli(t *testing.T) {
	var b strings.Builder
	b.WriteString("# bosun command reference\n\n")
	b.WriteString("Generated from the commands' own help by `go test ./cmd/bosun -run TestDocs_cli -update`; a test fails when it differs from the code.\n\n")
	_, out, _ := runCLI(t, nil, "--help")
	b.WriteString("```\n" + out + "```\n")
	for _, name := range order {
		if _, ok := commands[name]; !ok {
			continue
		}
		_, out, _ := runCLI(t, nil, name, "--help")
		b.WriteString("\n## bosun " + name + "\n\n```\n" + out + "```\n")
		for _, sub := range subcommands[name] {
			code, out, _ := runCLI(t, nil, name, sub, "--help")
			if code == 0 && out != "" {
				b.WriteString("\n### bosun " + name + " " + sub + "\n\n```\n" + out + "```\n")
			}
		}
	}
	got := b.String()
	const path = "../../docs/cli.md"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if string(want) != got {
		os.WriteFile(path+".got", []byte(got), 0o644)
		t.Fatalf("docs/cli.md differs from the commands' help; see docs/cli.md.got, or run go test ./cmd/bosun -run TestDocs_cli -update")
	}
}
