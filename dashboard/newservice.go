package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	pathpkg "path"
	"regexp"
	"sort"
	"strings"
	"testing/fstest"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
	"github.com/bosunhq/bosun/webhook"
)

// Changes is what the new-service form and the rollback action ask of the
// daemon (*daemon.Daemon).
type Changes interface {
	// Head fetches repo and returns its config folder at the head of its
	// tracked branch, and that commit.
	Head(ctx context.Context, repo string) (fs.FS, string, error)
	// Check plans fsys, a would-be config folder of repo based on sha, as
	// the daemon plans a pull request; mistakes are planner.ConfigErrors.
	Check(ctx context.Context, repo, sha string, fsys fs.FS) error
	// Propose opens a pull request into repo's tracked branch; p.Files
	// are paths inside the config folder.
	Propose(ctx context.Context, repo string, p webhook.Proposal) (webhook.ProposedPR, error)
	// Rollback queues a rollback of service to version to ("": the
	// previous one), then a hold, asked by actor. A service or version
	// that never ran is an error wrapping state.ErrNotFound.
	Rollback(ctx context.Context, repo, service, to, actor, reason string) error
}

// serviceForm is what the new-service form holds: what was typed, what the
// repository offers, and what went wrong.
type serviceForm struct {
	Repos     []string
	Repo      string
	Templates []string
	Servers   []planner.InventoryServer
	SHA       string

	Type, Name, Image, Domain, Env, Secrets, Health string
	SSL                                             bool
	Picked                                          map[string]bool

	Errors []string
	Done   *webhook.ProposedPR
	File   string // the service file written, once done
	Path   string
}

var (
	serviceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	envKeyRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// newServicePage is GET /services/new: the form, for the repository
// ?repo= (the first one by default).
func (s *Server) newServicePage(w http.ResponseWriter, r *http.Request) {
	f := &serviceForm{Repo: r.URL.Query().Get("repo"), SSL: true, Health: "/up", Picked: map[string]bool{}}
	code := s.loadForm(r, f)
	s.page(w, r, code, "newservice", map[string]any{"F": f})
}

// loadForm fills what the repository offers: its templates and servers at
// the head of its branch. It returns the page's status.
func (s *Server) loadForm(r *http.Request, f *serviceForm) int {
	if s.opts.Daemon == nil || s.opts.Changes == nil {
		f.Errors = append(f.Errors, "no daemon runs here: the form needs its repositories")
		return http.StatusServiceUnavailable
	}
	f.Repos = s.opts.Daemon.Repos()
	if f.Repo == "" && len(f.Repos) > 0 {
		f.Repo = f.Repos[0]
	}
	known := false
	for _, n := range f.Repos {
		known = known || n == f.Repo
	}
	if !known {
		f.Errors = append(f.Errors, "no repository "+f.Repo)
		return http.StatusNotFound
	}
	head, sha, err := s.opts.Changes.Head(r.Context(), f.Repo)
	if err != nil {
		s.log.ErrorContext(r.Context(), "repository not read for the form", "repo", f.Repo, "err", err)
		f.Errors = append(f.Errors, "the repository could not be read; see bosun's log")
		return http.StatusServiceUnavailable
	}
	f.SHA = sha
	servers, templates, err := planner.Inventory(head)
	f.Servers, f.Templates = servers, templates
	if err != nil {
		f.Errors = append(f.Errors, "fleet.yml at the branch's head has mistakes: "+err.Error())
	}
	return http.StatusOK
}

// newService is POST /services/new: check the form, then the would-be
// repository with the planner, and only then write the service file to a
// new branch and open a pull request. Nothing is deployed: bosun plans
// the pull request like any other, and merging it deploys.
func (s *Server) newService(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.page(w, r, http.StatusBadRequest, "error", map[string]any{"Message": "the form could not be read"})
		return
	}
	v := r.PostForm
	f := &serviceForm{Repo: v.Get("repo"), Type: v.Get("type"), Name: strings.TrimSpace(v.Get("name")), Image: strings.TrimSpace(v.Get("image")),
		Domain: strings.TrimSpace(v.Get("domain")), Env: v.Get("env"), Secrets: v.Get("secrets"), Health: strings.TrimSpace(v.Get("health")),
		SSL: v.Get("ssl") != "", Picked: map[string]bool{}}
	for _, sv := range v["servers"] {
		f.Picked[sv] = true
	}
	if code := s.loadForm(r, f); code != http.StatusOK {
		s.page(w, r, code, "newservice", map[string]any{"F": f})
		return
	}
	head, _, err := s.opts.Changes.Head(r.Context(), f.Repo)
	if err == nil && f.SHA != "" {
		var file []byte
		file, f.Errors = f.serviceFile(head)
		f.Path = "services/" + f.Name + ".yml"
		if len(f.Errors) == 0 {
			f.Errors = s.check(r.Context(), f, head, file)
		}
		if len(f.Errors) == 0 {
			f.File = string(file)
			s.propose(r, f, file)
		}
	} else if err != nil {
		f.Errors = append(f.Errors, "the repository could not be read; see bosun's log")
	}
	code := http.StatusOK
	switch {
	case f.Done != nil:
		code = http.StatusCreated
	case len(f.Errors) > 0:
		code = http.StatusUnprocessableEntity
	}
	s.page(w, r, code, "newservice", map[string]any{"F": f})
}

// serviceFile checks the fields and writes the service file: the template
// and its vars, or a plain Kamal-style file.
func (f *serviceForm) serviceFile(head fs.FS) ([]byte, []string) {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if !serviceNameRE.MatchString(f.Name) {
		bad("Name: %q is not a service name: lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters", f.Name)
	} else {
		for _, ext := range []string{".yml", ".yaml"} {
			if _, err := fs.Stat(head, "services/"+f.Name+ext); err == nil {
				bad("Name: services/%s%s exists already", f.Name, ext)
			}
		}
	}
	if f.Image == "" {
		bad("Image: required, e.g. ghcr.io/acme/app:v1")
	}
	if f.Type != "" && !contains(f.Templates, f.Type) {
		bad("Application type: no template %q in the repository", f.Type)
	}
	var servers []string
	for _, sv := range f.Servers {
		if f.Picked[sv.Name] {
			servers = append(servers, sv.Name)
		}
	}
	for p := range f.Picked {
		if !contains(serverNames(f.Servers), p) {
			bad("Servers: %q is not in fleet.yml", p)
		}
	}
	if len(servers) == 0 {
		bad("Servers: pick at least one")
	}
	env := map[string]string{}
	for i, line := range strings.Split(f.Env, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, val, ok := strings.Cut(line, "=")
		if !ok || !envKeyRE.MatchString(k) {
			bad("Clear env, line %d: write NAME=value (NAME: letters, digits and _)", i+1)
			continue
		}
		env[k] = val
	}
	var secrets []string
	for _, n := range strings.FieldsFunc(f.Secrets, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		if strings.Contains(n, "=") {
			bad("Secrets: names only, never values (bosun reads the values from its secret sources)")
			continue
		}
		if !envKeyRE.MatchString(n) {
			bad("Secrets: %q is not a variable name", n)
			continue
		}
		secrets = append(secrets, n)
	}
	if f.Health != "" && !strings.HasPrefix(f.Health, "/") {
		bad("Health path: starts with /, e.g. /up")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	var doc any
	if f.Type != "" {
		vars := yaml.Node{Kind: yaml.MappingNode}
		add := func(k string, v any) {
			var n yaml.Node
			n.Encode(v)
			vars.Content = append(vars.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, &n)
		}
		add("service_name", f.Name)
		add("image_url", f.Image)
		add("servers", servers)
		if f.Domain != "" {
			add("domain", f.Domain)
		}
		add("ssl", f.SSL)
		if f.Health != "" {
			add("health_path", f.Health)
		}
		if len(env) > 0 {
			add("env", env)
		}
		if len(secrets) > 0 {
			add("secrets", secrets)
		}
		doc = struct {
			Template string     `yaml:"template"`
			Vars     *yaml.Node `yaml:"vars"`
		}{f.Type, &vars}
	} else {
		type health struct {
			Path string `yaml:"path"`
		}
		type proxy struct {
			Host        string  `yaml:"host,omitempty"`
			SSL         bool    `yaml:"ssl,omitempty"`
			Healthcheck *health `yaml:"healthcheck,omitempty"`
		}
		type envs struct {
			Clear  map[string]string `yaml:"clear,omitempty"`
			Secret []string          `yaml:"secret,omitempty"`
		}
		file := struct {
			Service string   `yaml:"service"`
			Image   string   `yaml:"image"`
			Servers []string `yaml:"servers,flow"`
			Proxy   *proxy   `yaml:"proxy,omitempty"`
			Env     *envs    `yaml:"env,omitempty"`
		}{Service: f.Name, Image: f.Image, Servers: servers}
		if f.Domain != "" || f.SSL || f.Health != "" {
			file.Proxy = &proxy{Host: f.Domain, SSL: f.SSL}
			if f.Health != "" {
				file.Proxy.Healthcheck = &health{Path: f.Health}
			}
		}
		if len(env) > 0 || len(secrets) > 0 {
			file.Env = &envs{Clear: env, Secret: secrets}
		}
		doc = file
	}
	var b bytes.Buffer
	b.WriteString("# Added from bosun's dashboard.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, []string{"the service file could not be written: " + err.Error()}
	}
	enc.Close()
	return b.Bytes(), nil
}

// check plans the repository as the pull request would make it, with the
// planner's own validation: a form that passes yields a pull request bosun
// can plan.
func (s *Server) check(ctx context.Context, f *serviceForm, head fs.FS, file []byte) []string {
	tree, err := withFile(head, f.Path, file)
	if err != nil {
		s.log.ErrorContext(ctx, "repository not copied for the check", "repo", f.Repo, "err", err)
		return []string{"the repository could not be read; see bosun's log"}
	}
	err = s.opts.Changes.Check(ctx, f.Repo, f.SHA, tree)
	var cerrs planner.ConfigErrors
	switch {
	case errors.As(err, &cerrs):
		out := make([]string, 0, len(cerrs))
		for _, e := range cerrs {
			out = append(out, e.Error())
		}
		return out
	case err != nil:
		s.log.ErrorContext(ctx, "would-be repository not planned", "repo", f.Repo, "err", err)
		return []string{"bosun could not plan the change; see bosun's log"}
	}
	return nil
}

// propose writes the file to a new branch and opens the pull request.
func (s *Server) propose(r *http.Request, f *serviceForm, file []byte) {
	id, _ := IdentityOf(r.Context())
	branch := "bosun/new-service-" + f.Name + "-" + time.Now().UTC().Format("20060102-150405")
	p := webhook.Proposal{BaseSHA: f.SHA, Branch: branch, Files: map[string][]byte{f.Path: file},
		Message: "services: add " + f.Name + " (from bosun's dashboard, by " + id.Actor + ")",
		Title:   "Add service " + f.Name,
		Body: "Opened by " + id.Actor + " from bosun's dashboard: it adds `" + f.Path + "`. " +
			"bosun plans this pull request like any other and posts the plan here; merging it deploys " + f.Name + ".\n"}
	pr, err := s.opts.Changes.Propose(r.Context(), f.Repo, p)
	if err != nil {
		s.log.ErrorContext(r.Context(), "pull request not opened", "repo", f.Repo, "service", f.Name, "actor", id.Actor, "err", err)
		msg := "the pull request could not be opened; see bosun's log"
		if errors.Is(err, webhook.ErrRefused) {
			msg = "the forge refused the pull request (" + err.Error() + ")"
		}
		f.Errors = append(f.Errors, msg)
		return
	}
	f.Done = &pr
	s.log.InfoContext(r.Context(), "new-service pull request opened", "repo", f.Repo, "service", f.Name, "pr", pr.Number, "actor", id.Actor)
	s.record(r, state.Action{Action: ActionNewService, Repo: f.Repo, Service: f.Name, Detail: pr.URL})
}

// withFile copies head into memory and adds the file at name: the tree
// the pull request would make. (Config folders are small; the copy keeps
// the planner's view of the tree a plain fs.FS.)
func withFile(head fs.FS, name string, data []byte) (fs.FS, error) {
	tree := fstest.MapFS{}
	err := fs.WalkDir(head, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(head, p)
		if err != nil {
			return err
		}
		tree[p] = &fstest.MapFile{Data: b, Mode: 0o644}
		return nil
	})
	if err != nil {
		return nil, err
	}
	tree[pathpkg.Clean(name)] = &fstest.MapFile{Data: data, Mode: 0o644}
	return tree, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func serverNames(ss []planner.InventoryServer) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	sort.Strings(out)
	return out
}
