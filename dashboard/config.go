package dashboard

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// Config is the `dashboard:` section of bosun.yaml. Secrets never live in
// it: the OAuth client secret is named by an environment variable or a
// file, as the daemon's other credentials are.
type Config struct {
	// Listen is the dashboard's own address; "" serves it on the daemon's
	// listen address beside the webhooks.
	Listen string `yaml:"listen"`
	// BaseURL is where people open the dashboard, e.g.
	// https://bosun.example.com: the OAuth redirect goes to
	// BASE_URL/login/callback, and an https base URL makes cookies Secure.
	BaseURL string `yaml:"base_url"`
	// PublicRead lets requests without login read pages and the API (GET
	// and HEAD only) as viewers. Nothing that changes anything is public.
	PublicRead bool         `yaml:"public_read"`
	GitHub     GitHubConfig `yaml:"github"`
	// Roles map forge users, organisations and teams to roles; a user gets
	// the highest role of every rule that matches them, and one matching
	// no rule cannot log in.
	Roles []RoleRule `yaml:"roles"`
}

// GitHubConfig is the GitHub OAuth App that people log in with (github.com
// or GitHub Enterprise).
type GitHubConfig struct {
	ClientID         string `yaml:"client_id"`
	ClientSecretEnv  string `yaml:"client_secret_env"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// WebURL is where the login page is: https://github.com (the default)
	// or https://HOST for GitHub Enterprise.
	WebURL string `yaml:"web_url"`
	// APIURL is the API root: https://api.github.com/ (the default) or
	// https://HOST/api/v3/ for GitHub Enterprise.
	APIURL string `yaml:"api_url"`
}

// RoleRule gives Role to a user (User), to every member of an organisation
// (Org), or to the members of one of its teams (Org and Team, the team's
// slug).
type RoleRule struct {
	Org  string `yaml:"org"`
	Team string `yaml:"team"`
	User string `yaml:"user"`
	Role Role   `yaml:"role"`
}

// Defaults for GitHub.com.
const (
	DefaultWebURL = "https://github.com"
	DefaultAPIURL = "https://api.github.com/"
)

// OAuth says whether login with the forge is configured.
func (c Config) OAuth() bool { return c.GitHub.ClientID != "" }

// webURL and apiURL are the configured URLs or GitHub.com's, without a
// trailing slash.
func (c Config) webURL() string {
	if c.GitHub.WebURL == "" {
		return DefaultWebURL
	}
	return strings.TrimSuffix(c.GitHub.WebURL, "/")
}

func (c Config) apiURL() string {
	if c.GitHub.APIURL == "" {
		return strings.TrimSuffix(DefaultAPIURL, "/")
	}
	return strings.TrimSuffix(c.GitHub.APIURL, "/")
}

// secureCookies says whether cookies get the Secure attribute.
func (c Config) secureCookies() bool { return strings.HasPrefix(c.BaseURL, "https://") }

var (
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// GitHub's login and organisation names, and team slugs.
	loginRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
	slugRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,99}$`)
)

// Validate reports every problem in the section, each naming its field
// (under "dashboard.").
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("dashboard."+format, args...)) }
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			add("listen: %q is not host:port", c.Listen)
		}
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			add("base_url: %q is not an http(s) URL", c.BaseURL)
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			add("base_url: %q must be scheme://host[:port] only", c.BaseURL)
		case u.Path != "" && u.Path != "/":
			add("base_url: %q has a path; the dashboard is served at the root of its host", c.BaseURL)
		}
	}
	g := c.GitHub
	if c.OAuth() {
		if c.BaseURL == "" {
			add("base_url: needed for GitHub login (the OAuth redirect goes to BASE_URL/login/callback)")
		}
		switch {
		case g.ClientSecretEnv == "" && g.ClientSecretFile == "":
			add("github: set client_secret_env or client_secret_file")
		case g.ClientSecretEnv != "" && g.ClientSecretFile != "":
			add("github: set one of client_secret_env and client_secret_file, not both")
		case g.ClientSecretEnv != "" && !envNameRE.MatchString(g.ClientSecretEnv):
			add("github.client_secret_env: %q is not an environment variable name", g.ClientSecretEnv)
		}
		if len(c.Roles) == 0 {
			add("roles: list at least one rule; without one nobody can log in")
		}
	} else if g.ClientSecretEnv != "" || g.ClientSecretFile != "" {
		add("github: a client secret without client_id")
	}
	for field, v := range map[string]string{"web_url": g.WebURL, "api_url": g.APIURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("github.%s: %q is not an http(s) URL", field, v)
		} else if u.User != nil {
			add("github.%s: credentials do not belong in the URL", field)
		}
	}
	for i, r := range c.Roles {
		at := fmt.Sprintf("roles[%d]", i)
		switch {
		case r.User != "" && (r.Org != "" || r.Team != ""):
			add("%s: a rule names a user, or an org (and maybe a team), not both", at)
		case r.Team != "" && r.Org == "":
			add("%s: a team needs its org", at)
		case r.User == "" && r.Org == "":
			add("%s: name a user or an org", at)
		}
		if r.User != "" && !loginRE.MatchString(r.User) {
			add("%s.user: %q is not a GitHub login", at, r.User)
		}
		if r.Org != "" && !loginRE.MatchString(r.Org) {
			add("%s.org: %q is not a GitHub organisation name", at, r.Org)
		}
		if r.Team != "" && !slugRE.MatchString(r.Team) {
			add("%s.team: %q is not a team slug (lowercase, as in the team's URL)", at, r.Team)
		}
		if !r.Role.Valid() {
			add("%s.role: %q is not viewer, deployer or admin", at, r.Role)
		}
	}
	return errors.Join(errs...)
}
