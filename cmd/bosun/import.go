package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing/fstest"

	"gopkg.in/yaml.v3"

	"github.com/bosunhq/bosun/planner"
)

func init() {
	register(&command{name: "import", summary: "write a config repository from a Kamal project (bosun import kamal PATH)", run: runImport})
}

const importUsage = `Usage: bosun import SUBCOMMAND [flags]

Subcommands:
  kamal PATH    write fleet.yml and services/ from a Kamal project

Run 'bosun import SUBCOMMAND --help' for flags.
`

func runImport(ctx context.Context, args []string, e env) (int, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, importUsage)
		if len(args) == 0 {
			return 1, nil
		}
		return 0, nil
	}
	if args[0] == "kamal" {
		return runImportKamal(ctx, args[1:], e)
	}
	fmt.Fprintf(e.stderr, "bosun import: unknown subcommand %q\n\n%s", args[0], importUsage)
	return 1, nil
}

func runImportKamal(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("import kamal", "bosun import kamal [--out DIR] [--erb-env NAME]... PATH", `
Write a config repository into DIR from the Kamal project at PATH (its
folder, or its config/deploy.yml): config/deploy.yml becomes
services/SERVICE.yml and each destination file config/deploy.DEST.yml
becomes services/SERVICE.DEST.yml, copied unchanged (bosun reads Kamal's
format); fleet.yml is written with no servers when DIR has none (the
service names its hosts by address). Existing files are never overwritten:
importing a second project into the same DIR adds its service.

Then it checks the result as bosun validate does (without a destination and
with each one) and prints what it could not carry over: every error, every
ignored key, Kamal's hooks, the secrets by name (from .kamal/secrets* and the
service files; values are never read or copied), and the ERB variables to
pass with --erb-env.

A Kamal 1 file (traefik, the Kamal 1 healthcheck) is refused and nothing is
written: upgrade it to Kamal 2 first (kamal upgrade).

Exit status: 0 written and valid, 1 an error, or written with errors that
must be fixed before bosun plans it (listed).`, e)
	out := fs.String("out", ".", "the config repository `DIR` to write (made if missing)")
	var erbEnv stringList
	fs.Var(&erbEnv, "erb-env", "environment variable `NAME` that ERB lookups (<%= ENV[\"NAME\"] %>) may read while checking (repeatable; no other is visible)")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if fs.NArg() != 1 {
		return 1, fmt.Errorf("want one Kamal project folder (or its config/deploy.yml), got %d arguments", fs.NArg())
	}
	proj, err := readKamalProject(fs.Arg(0))
	if err != nil {
		return 1, err
	}
	im, err := proj.stage(*out)
	if err != nil {
		return 1, err
	}
	checks, err := im.check(ctx, planner.ERBEnvFrom(e.getenv, erbEnv))
	if err != nil {
		return 1, err
	}
	if kamal1 := kamal1Errors(checks); len(kamal1) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%s is a Kamal 1 project; nothing was written. Upgrade it to Kamal 2 first (`kamal upgrade`, see https://kamal-deploy.org/docs/upgrading/overview/), then import again:", proj.root)
		for _, ce := range kamal1 {
			fmt.Fprintf(&b, "\n  %s", im.inKamal(ce))
		}
		return 1, errors.New(b.String())
	}
	if err := im.write(); err != nil {
		return 1, err
	}
	ok := im.report(e.stdout, checks)
	if !ok {
		return 1, nil
	}
	return 0, nil
}

// kamalProject is what bosun reads of a Kamal project: the deploy file, its
// destination files, the names in its secrets files and its hooks.
type kamalProject struct {
	root       string // the project folder
	deployFile string // config/deploy.yml (or the file named)
	deploy     []byte
	service    string
	builder    bool        // the deploy file has a builder: Kamal builds the image
	dests      []kamalDest // sorted by name
	secrets    []kamalSecret
	hooks      []string // .kamal/hooks/NAME, without samples
	skipped    []string // what was found but not imported, and why
}

type kamalDest struct {
	name, file string
	data       []byte
}

// kamalSecret is one name set in a .kamal/secrets* file, and how (never
// the value).
type kamalSecret struct {
	name, file string
	line       int
	how        string
}

func (p *kamalProject) rel(path string) string {
	if r, err := filepath.Rel(p.root, path); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return path
}

// destFileRE is Kamal's destination file name, deploy.DEST.yml.
var destFileRE = regexp.MustCompile(`^deploy\.([^.]+)\.ya?ml$`)

// bosunNameRE is the rule for service and destination names (planner's).
var bosunNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

func readKamalProject(path string) (*kamalProject, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read the Kamal project: %w", err)
	}
	p := &kamalProject{}
	if st.IsDir() {
		p.root = path
		for _, name := range []string{"deploy.yml", "deploy.yaml"} {
			if f := filepath.Join(path, "config", name); fileExists(f) {
				p.deployFile = f
				break
			}
		}
		if p.deployFile == "" {
			return nil, fmt.Errorf("%s has no config/deploy.yml: name the Kamal project's folder, or its deploy file", path)
		}
	} else {
		p.deployFile = path
		p.root = filepath.Dir(path)
		if filepath.Base(p.root) == "config" {
			p.root = filepath.Dir(p.root)
		}
	}
	if p.deploy, err = os.ReadFile(p.deployFile); err != nil {
		return nil, fmt.Errorf("read the Kamal deploy file: %w", err)
	}
	if p.service, p.builder, err = kamalHead(p.deploy); err != nil {
		return nil, fmt.Errorf("%s: %w", p.deployFile, err)
	}
	if err := p.readDestinations(); err != nil {
		return nil, err
	}
	if err := p.readSecrets(); err != nil {
		return nil, err
	}
	hooks, _ := os.ReadDir(filepath.Join(p.root, ".kamal", "hooks"))
	for _, h := range hooks {
		if !h.IsDir() && !strings.HasSuffix(h.Name(), ".sample") {
			p.hooks = append(p.hooks, ".kamal/hooks/"+h.Name())
		}
	}
	return p, nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// kamalHead reads the service key, and whether there is a builder. ERB is
// left as it is: a service name is plain text in the Kamal files we know.
func kamalHead(data []byte) (service string, builder bool, err error) {
	var head struct {
		Service any `yaml:"service"`
		Builder any `yaml:"builder"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return "", false, fmt.Errorf("not a YAML mapping with a service key: %w", err)
	}
	name, ok := head.Service.(string)
	switch {
	case head.Service == nil:
		return "", false, errors.New("service is missing: Kamal and bosun need service: NAME")
	case !ok || !bosunNameRE.MatchString(name) || len(name) > 63:
		return "", false, fmt.Errorf("service %v is not a name bosun takes (lowercase letters, digits, '-' and '_', at most 63 characters): rename it in the deploy file", head.Service)
	}
	return name, head.Builder != nil, nil
}

func (p *kamalProject) readDestinations() error {
	dir := filepath.Dir(p.deployFile)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list the destination files: %w", err)
	}
	stem := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(p.deployFile), ".yml"), ".yaml")
	for _, ent := range ents {
		name := ent.Name()
		if ent.IsDir() || name == filepath.Base(p.deployFile) {
			continue
		}
		m := destFileRE.FindStringSubmatch(name)
		if stem != "deploy" {
			// A deploy file named otherwise (kamal -c): its destinations are STEM.DEST.yml.
			m = regexp.MustCompile(`^` + regexp.QuoteMeta(stem) + `\.([^.]+)\.ya?ml$`).FindStringSubmatch(name)
		}
		if m == nil {
			continue
		}
		f := filepath.Join(dir, name)
		if !bosunNameRE.MatchString(m[1]) || len(m[1]) > 63 {
			p.skipped = append(p.skipped, fmt.Sprintf("%s: destination %q is not a name bosun takes (lowercase letters, digits, '-' and '_'): rename the file and import again", p.rel(f), m[1]))
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read the destination file: %w", err)
		}
		p.dests = append(p.dests, kamalDest{name: m[1], file: f, data: data})
	}
	slices.SortFunc(p.dests, func(a, b kamalDest) int { return strings.Compare(a.name, b.name) })
	return nil
}

// secretLineRE is a dotenv assignment; only the name is kept.
var secretLineRE = regexp.MustCompile(`^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$`)

// readSecrets reads the names in .kamal/secrets, .kamal/secrets-common and
// .kamal/secrets.DEST. A value is looked at only to say how Kamal gets it
// (a command, another variable, a literal); it is never kept.
func (p *kamalProject) readSecrets() error {
	dir := filepath.Join(p.root, ".kamal")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil // no .kamal folder
	}
	for _, ent := range ents {
		n := ent.Name()
		if ent.IsDir() || n != "secrets" && n != "secrets-common" && !strings.HasPrefix(n, "secrets.") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("read the Kamal secrets file's names: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for line := 1; sc.Scan(); line++ {
			m := secretLineRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			v := strings.TrimSpace(m[2])
			how := "a value written in the file (not copied)"
			switch {
			case strings.Contains(v, "$(") || strings.Contains(v, "`"):
				how = "a command, which bosun does not run"
			case strings.HasPrefix(v, "$"):
				how = "another environment variable"
			case v == "":
				how = "empty"
			}
			p.secrets = append(p.secrets, kamalSecret{name: m[1], file: ".kamal/" + n, line: line, how: how})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read the Kamal secrets file's names (.kamal/%s): %w", n, err)
		}
	}
	return nil
}

// kamalImport is a project staged for one config repository folder.
type kamalImport struct {
	proj  *kamalProject
	out   string
	files map[string][]byte // repository path -> content, to write
	from  map[string]string // repository path -> the Kamal file it comes from
	kept  []string          // files of the repository left as they are
}

func (p *kamalProject) stage(out string) (*kamalImport, error) {
	im := &kamalImport{proj: p, out: out, files: map[string][]byte{}, from: map[string]string{}}
	svc := "services/" + p.service + ".yml"
	im.add(svc, p.deploy, p.deployFile)
	for _, d := range p.dests {
		im.add("services/"+p.service+"."+d.name+".yml", d.data, d.file)
	}
	var exist []string
	for f := range im.files {
		if _, err := os.Lstat(filepath.Join(out, filepath.FromSlash(f))); err == nil {
			exist = append(exist, f)
		}
	}
	for _, ext := range []string{".yaml"} {
		if _, err := os.Lstat(filepath.Join(out, "services", p.service+ext)); err == nil {
			exist = append(exist, "services/"+p.service+ext)
		}
	}
	if len(exist) > 0 {
		slices.Sort(exist)
		return nil, fmt.Errorf("%s already has %s: nothing was written (bosun import never overwrites a file; move it away, or import into another folder)", out, strings.Join(exist, ", "))
	}
	if data, err := os.ReadFile(filepath.Join(out, "fleet.yml")); err == nil {
		im.kept = append(im.kept, "fleet.yml")
		im.files["fleet.yml"] = data
	} else if errors.Is(err, fs.ErrNotExist) {
		im.files["fleet.yml"] = []byte(importedFleet)
		im.from["fleet.yml"] = ""
	} else {
		return nil, fmt.Errorf("read the config repository's fleet.yml: %w", err)
	}
	return im, nil
}

const importedFleet = `# The server inventory (docs/config.md). Written by bosun import kamal:
# the service files name their hosts by address, as Kamal's do, so none
# needs to be listed. Name servers here to use tag: selectors, per-server
# SSH users and ports, or defaults for every service.
servers: {}
`

func (im *kamalImport) add(path string, data []byte, from string) {
	im.files[path] = data
	im.from[path] = from
}

// original is a config error with the Kamal file it comes from named too.
func (im *kamalImport) original(ce *planner.ConfigError) string {
	if from := im.from[ce.File]; from != "" {
		return fmt.Sprintf("%s (%s:%d)", ce.Error(), im.proj.rel(from), ce.Line)
	}
	return ce.Error()
}

// inKamal is a config error placed in the Kamal file it comes from.
func (im *kamalImport) inKamal(ce *planner.ConfigError) string {
	if from := im.from[ce.File]; from != "" {
		return fmt.Sprintf("%s:%d:%d: %s", im.proj.rel(from), ce.Line, ce.Col, ce.Msg)
	}
	return ce.Error()
}

// importCheck is the outcome of planning the staged repository with one
// destination ("": none).
type importCheck struct {
	dest    string
	errs    planner.ConfigErrors
	plan    *planner.Plan
	notices []string
}

// check plans the staged files as bosun validate does, without a
// destination and with each one.
func (im *kamalImport) check(ctx context.Context, erb map[string]string) ([]importCheck, error) {
	fsys := fstest.MapFS{}
	for f, data := range im.files {
		fsys[f] = &fstest.MapFile{Data: data}
	}
	dests := []string{""}
	for _, d := range im.proj.dests {
		dests = append(dests, d.name)
	}
	var out []importCheck
	for _, dest := range dests {
		p := planner.New(planner.Config{SecretKey: []byte("import")})
		plan, err := p.Plan(ctx, fsys, planner.Input{Repo: "import", Destination: dest, ERBEnv: erb})
		c := importCheck{dest: dest}
		if err != nil && !errors.As(err, &c.errs) {
			return nil, fmt.Errorf("check the imported files: %w", err)
		}
		if err == nil {
			c.plan, c.notices = plan, plan.Notices
		}
		out = append(out, c)
	}
	return out, nil
}

func kamal1Errors(checks []importCheck) []*planner.ConfigError {
	var out []*planner.ConfigError
	seen := map[string]bool{}
	for _, c := range checks {
		for _, ce := range c.errs {
			if ce.Kamal1 && !seen[ce.Error()] {
				seen[ce.Error()] = true
				out = append(out, ce)
			}
		}
	}
	return out
}

func (im *kamalImport) write() error {
	paths := make([]string, 0, len(im.files))
	for f := range im.files {
		if !slices.Contains(im.kept, f) {
			paths = append(paths, f)
		}
	}
	slices.Sort(paths)
	for _, f := range paths {
		dst := filepath.Join(im.out, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("write the config repository: %w", err)
		}
		// O_EXCL: a file that appeared since stage is not overwritten.
		fh, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("write the config repository: %w", err)
		}
		_, err = fh.Write(im.files[f])
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", dst, err)
		}
	}
	return nil
}

// erbNameRE finds the variable of an ERB ENV lookup.
var erbNameRE = regexp.MustCompile(`ENV(?:\[\s*["']([^"']+)["']\s*\]|\.fetch\(\s*["']([^"']+)["'])`)

// report prints what was written, how each destination checks, the secret
// names, and what was not carried over. It returns whether every planned
// form of the service is valid.
func (im *kamalImport) report(w io.Writer, checks []importCheck) bool {
	p := im.proj
	fmt.Fprintf(w, "Imported the Kamal project %s (service %s) into %s:\n", p.root, p.service, im.out)
	var paths []string
	for f := range im.files {
		paths = append(paths, f)
	}
	slices.Sort(paths)
	for _, f := range paths {
		switch {
		case slices.Contains(im.kept, f):
			fmt.Fprintf(w, "  kept   %s (it was there)\n", f)
		case im.from[f] == "":
			fmt.Fprintf(w, "  wrote  %s (no servers)\n", f)
		default:
			fmt.Fprintf(w, "  wrote  %s from %s\n", f, p.rel(im.from[f]))
		}
	}

	fmt.Fprintf(w, "\nChecked as bosun validate does:\n")
	ok := true
	baseOnly := len(checks) > 1 // a base with destinations need not plan alone
	for i, c := range checks {
		label, cmd := "without a destination", "bosun validate "+im.out
		if c.dest != "" {
			label, cmd = "destination "+c.dest, "bosun validate --destination "+c.dest+" "+im.out
		}
		if len(c.errs) == 0 {
			n := 0
			for _, ch := range c.plan.Changes {
				if ch.Desired != nil {
					n++
				}
			}
			fmt.Fprintf(w, "  %s: valid, %d target(s) (%s)\n", label, n, cmd)
			continue
		}
		if i > 0 || !baseOnly {
			ok = false
		}
		fmt.Fprintf(w, "  %s: %d error(s) to fix before bosun plans it (%s):\n", label, len(c.errs), cmd)
		if i == 0 && baseOnly {
			fmt.Fprintf(w, "    (Kamal deploys this base only with -d DEST, too, when these say a destination is needed)\n")
		}
		for _, ce := range c.errs {
			fmt.Fprintf(w, "    %s\n", im.original(ce))
		}
	}

	// The secret names the service needs, from every form that planned.
	need := map[string]bool{}
	for _, c := range checks {
		if c.plan == nil {
			continue
		}
		for _, ch := range c.plan.Changes {
			if ch.Desired == nil {
				continue
			}
			for _, ref := range ch.Desired.Secrets {
				need[ref.Name] = true
			}
			if px := ch.Desired.Proxy; px != nil && px.Certificate != nil {
				need[px.Certificate.CertificatePEM.Name] = true
				need[px.Certificate.PrivateKeyPEM.Name] = true
			}
		}
		for _, s := range c.plan.Services {
			if r := s.Registry; r != nil {
				for _, n := range []string{r.UsernameSecret, r.PasswordSecret} {
					if n != "" {
						need[n] = true
					}
				}
			}
		}
	}
	defined := map[string][]kamalSecret{}
	for _, s := range p.secrets {
		defined[s.name] = append(defined[s.name], s)
	}
	if len(need) > 0 || len(p.secrets) > 0 {
		fmt.Fprintf(w, "\nSecrets, by name (no value was read or copied). Give bosun each one the\nservice uses: --secrets-file FILE or the environment for bosun plan/apply,\nsecrets: in the daemon config for bosun serve (docs/config.md):\n")
		names := mapKeysSorted(need)
		for _, n := range names {
			var where []string
			for _, s := range defined[n] {
				where = append(where, fmt.Sprintf("%s:%d: %s", s.file, s.line, s.how))
			}
			if len(where) == 0 {
				where = []string{"not in .kamal/secrets*"}
			}
			fmt.Fprintf(w, "  %-28s used by the service; %s\n", n, strings.Join(where, "; "))
		}
		var unused []string
		for _, s := range p.secrets {
			if !need[s.name] && !slices.Contains(unused, s.name) {
				unused = append(unused, s.name)
			}
		}
		if len(unused) > 0 {
			fmt.Fprintf(w, "  set in .kamal/secrets* but not used by the service files (Kamal's builder or hooks?): %s\n", strings.Join(unused, ", "))
		}
	}

	fmt.Fprintf(w, "\nNot carried over, and notes:\n")
	var items []string
	items = append(items, p.skipped...)
	seen := map[string]bool{}
	for _, c := range checks {
		for _, n := range c.notices {
			if !seen[n] {
				seen[n] = true
				items = append(items, n)
			}
		}
	}
	for _, h := range p.hooks {
		items = append(items, h+": Kamal's hooks are not run by bosun (no local commands); do what it does in CI or by hand")
	}
	if len(p.secrets) > 0 {
		items = append(items, ".kamal/secrets*: not read by bosun (it runs no commands in it); give bosun the secrets by name, as listed above")
	}
	erbNames := map[string]bool{}
	for _, data := range im.files {
		for _, m := range erbNameRE.FindAllSubmatch(data, -1) {
			erbNames[string(m[1])+string(m[2])] = true
		}
	}
	if len(erbNames) > 0 {
		items = append(items, fmt.Sprintf("ERB: bosun runs only ENV lookups, of the variables the operator lists: pass --erb-env for %s to bosun plan/apply/validate (erb_env: in the daemon config's repo entry)", strings.Join(mapKeysSorted(erbNames), ", ")))
	}
	if p.builder {
		items = append(items, "images are not built: build and push each version to the registry yourself (e.g. in CI), and write its tag in image:")
	}
	if len(items) == 0 {
		fmt.Fprintf(w, "  nothing\n")
	}
	for _, it := range items {
		fmt.Fprintf(w, "  - %s\n", it)
	}
	fmt.Fprintf(w, "\nNext: commit %s to a git repository, run bosun plan --repo %s, and read docs/migrating-from-kamal.md before the first bosun apply.\n", im.out, im.out)
	return ok
}

func mapKeysSorted[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
