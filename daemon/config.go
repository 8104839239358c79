package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bosunhq/bosun/dashboard"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// Config is the daemon's configuration file (bosun.yaml). Secrets never
// live in it: each is named by an environment variable (`*_env`) or a file
// (`*_file`) that holds it.
type Config struct {
	Listen  string        `yaml:"listen"`   // address of the webhook and health endpoints
	State   string        `yaml:"state"`    // state store DSN: sqlite:… or postgres://…
	DataDir string        `yaml:"data_dir"` // clones and the proxy image cache
	SSH     SSHConfig     `yaml:"ssh"`
	Webhook WebhookConfig `yaml:"webhook"`
	Forge   ForgeConfig   `yaml:"forge"`
	Secrets SecretsConfig `yaml:"secrets"`
	Repos   []RepoConfig  `yaml:"repos"`
	// Grace is how long a running rollout may go on after SIGTERM before it
	// is cancelled.
	Grace Duration  `yaml:"grace"`
	Log   LogConfig `yaml:"log"`
	// Dashboard is the web dashboard, its JSON API and /metrics (see
	// docs/dashboard.md).
	Dashboard dashboard.Config `yaml:"dashboard"`
}

// SSHConfig says how the daemon reaches servers.
type SSHConfig struct {
	Key             string `yaml:"key"`                // private key file
	KnownHosts      string `yaml:"known_hosts"`        // known_hosts file
	TrustOnFirstUse bool   `yaml:"trust_on_first_use"` // record unknown host keys instead of refusing them
	// Concurrency is how many servers a rollout works on at once; 0 means
	// the executor's default (32).
	Concurrency int `yaml:"concurrency"`
}

// WebhookConfig names the webhook secret.
type WebhookConfig struct {
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`
}

// ForgeConfig says where statuses and plan comments go.
type ForgeConfig struct {
	Kind      string `yaml:"kind"`     // "github" (github.com or GitHub Enterprise); "" or "none": report nothing
	BaseURL   string `yaml:"base_url"` // API root, e.g. https://api.github.com/ or https://ghe.example.com/api/v3/
	TokenEnv  string `yaml:"token_env"`
	TokenFile string `yaml:"token_file"`
	// GitHub App auth, instead of a token.
	AppID          int64  `yaml:"app_id"`
	InstallationID int64  `yaml:"installation_id"`
	AppKeyFile     string `yaml:"app_key_file"`
}

// SecretsConfig says where the values of services' env.secret names come
// from: these dotenv files, then the environment variables named in Env or
// starting with EnvPrefix. Nothing else of the daemon's environment is a
// service secret: a pull request must not be able to name the daemon's own
// credentials.
type SecretsConfig struct {
	Files     []string `yaml:"files"`
	Env       []string `yaml:"env"`
	EnvPrefix string   `yaml:"env_prefix"`
}

// Sources is the planner's view of c.
func (c SecretsConfig) Sources() planner.SecretSources {
	return planner.SecretSources{Files: c.Files, Env: c.Env, EnvPrefix: c.EnvPrefix}
}

// RepoConfig is one watched config repository.
type RepoConfig struct {
	Name      string   `yaml:"name"`       // bosun's name for it: state, comment marker, logs
	URL       string   `yaml:"url"`        // git@…, ssh://…, https://…, file://… or a local path
	Branch    string   `yaml:"branch"`     // the tracked branch, applied on push
	Path      string   `yaml:"path"`       // the config repository's folder inside the git repository
	Poll      Duration `yaml:"poll"`       // fetch interval (with jitter); 0 means the default
	ForgeRepo string   `yaml:"forge_repo"` // "owner/name" on the forge, matched against webhooks
	// Git credentials, never in the URL: an SSH key file for ssh URLs, or a
	// token (env or file) sent as the password for https URLs.
	SSHKey       string `yaml:"ssh_key"`
	GitTokenEnv  string `yaml:"git_token_env"`
	GitTokenFile string `yaml:"git_token_file"`
	// Destination is the Kamal destination planned for this repository:
	// services/NAME.DEST.yml is merged over services/NAME.yml.
	Destination string `yaml:"destination"`
	// ERBEnv names the environment variables that ERB lookups in its
	// service files may read; no other variable of the daemon is visible
	// to them.
	ERBEnv []string `yaml:"erb_env"`
}

// LogConfig sets the log format and level.
type LogConfig struct {
	Format string `yaml:"format"` // json (default) or text
	Level  string `yaml:"level"`  // debug, info (default), warn, error
}

// Duration is a time.Duration written as "1m30s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write e.g. 30s, 1m, 1h)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// DefaultConfig is the configuration before the file is read.
func DefaultConfig() Config {
	return Config{
		Listen:  "127.0.0.1:8080",
		State:   state.DefaultDSN,
		DataDir: "bosun-data",
		Forge:   ForgeConfig{Kind: "none"},
		Grace:   Duration(5 * time.Minute),
		Log:     LogConfig{Format: "json", Level: "info"},
	}
}

// DefaultPoll is the fetch interval of a repository that sets none.
const DefaultPoll = time.Minute

// ParseConfig reads a configuration file over DefaultConfig and validates
// it. Unknown keys are errors.
func ParseConfig(r io.Reader) (Config, error) {
	cfg := DefaultConfig()
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt key is an error, not a silent default
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	for i := range cfg.Repos {
		r := &cfg.Repos[i]
		if r.Branch == "" {
			r.Branch = "main"
		}
		if r.Path == "" {
			r.Path = "."
		}
		if r.Poll == 0 {
			r.Poll = Duration(DefaultPoll)
		}
	}
	return cfg, cfg.Validate()
}

// LoadConfig reads and validates the configuration file at path.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

var (
	repoNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	forgeRepoRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// destinationRE is planner's name rule for a Kamal destination.
	destinationRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// Validate reports every problem in the configuration, each naming its field.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen: %q is not host:port", c.Listen)
	}
	if !strings.HasPrefix(c.State, "sqlite:") && !strings.HasPrefix(c.State, "postgres://") && !strings.HasPrefix(c.State, "postgresql://") {
		add("state: %q is neither sqlite:PATH nor postgres://…", state.Redact(c.State))
	}
	if strings.HasPrefix(c.State, "postgres") && state.HasPassword(c.State) {
		add("state: the DSN holds a password; put it in PGPASSWORD or ~/.pgpass, never in the config file")
	}
	if c.Webhook.SecretEnv == "" && c.Webhook.SecretFile == "" {
		add("webhook: set secret_env or secret_file (webhooks are always signed)")
	}
	if c.Webhook.SecretEnv != "" && c.Webhook.SecretFile != "" {
		add("webhook: set one of secret_env and secret_file, not both")
	}
	if c.Webhook.SecretEnv != "" && !envNameRE.MatchString(c.Webhook.SecretEnv) {
		add("webhook.secret_env: %q is not an environment variable name", c.Webhook.SecretEnv)
	}
	switch c.Forge.Kind {
	case "none", "":
	case "github":
		if c.Forge.BaseURL != "" {
			if u, err := url.Parse(c.Forge.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				add("forge.base_url: %q is not an http(s) URL", c.Forge.BaseURL)
			} else if u.User != nil {
				add("forge.base_url: credentials do not belong in the URL; use token_env or token_file")
			} else if msg := githubAPIRoot(u); msg != "" {
				add("forge.base_url: %q %s", c.Forge.BaseURL, msg)
			}
		}
		token := c.Forge.TokenEnv != "" || c.Forge.TokenFile != ""
		app := c.Forge.AppID != 0 || c.Forge.AppKeyFile != "" || c.Forge.InstallationID != 0
		switch {
		case token && app:
			add("forge: use a token (token_env/token_file) or a GitHub App (app_id, installation_id, app_key_file), not both")
		case app && (c.Forge.AppID == 0 || c.Forge.AppKeyFile == "" || c.Forge.InstallationID == 0):
			add("forge: GitHub App auth needs app_id, installation_id and app_key_file")
		case !token && !app:
			add("forge: kind github needs token_env, token_file or GitHub App settings")
		}
		if c.Forge.TokenEnv != "" && !envNameRE.MatchString(c.Forge.TokenEnv) {
			add("forge.token_env: %q is not an environment variable name", c.Forge.TokenEnv)
		}
	default:
		add("forge.kind: %q is not supported (use github or none)", c.Forge.Kind)
	}
	if err := c.Dashboard.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Dashboard.Listen != "" && c.Dashboard.Listen == c.Listen {
		add("dashboard.listen: %q is the daemon's listen address; leave it out to serve the dashboard there", c.Dashboard.Listen)
	}
	own := map[string]string{} // the daemon's own credentials, by variable
	if c.Webhook.SecretEnv != "" {
		own[c.Webhook.SecretEnv] = "webhook.secret_env"
	}
	if c.Forge.TokenEnv != "" {
		own[c.Forge.TokenEnv] = "forge.token_env"
	}
	if c.Dashboard.GitHub.ClientSecretEnv != "" {
		own[c.Dashboard.GitHub.ClientSecretEnv] = "dashboard.github.client_secret_env"
	}
	for i, r := range c.Repos {
		if r.GitTokenEnv != "" {
			own[r.GitTokenEnv] = fmt.Sprintf("repos[%d].git_token_env", i)
		}
	}
	for _, name := range c.Secrets.Env {
		if !envNameRE.MatchString(name) {
			add("secrets.env: %q is not an environment variable name", name)
		} else if field, ok := own[name]; ok {
			add("secrets.env: %s is the daemon's own credential (%s): services must not read it", name, field)
		}
	}
	if p := c.Secrets.EnvPrefix; p != "" {
		if !envNameRE.MatchString(p) {
			add("secrets.env_prefix: %q is not the start of an environment variable name", p)
		}
		for name, field := range own {
			if strings.HasPrefix(name, p) {
				add("secrets.env_prefix: %q covers %s, the daemon's own credential (%s): choose a prefix only services' secrets have", p, name, field)
			}
		}
	}
	if c.SSH.Concurrency < 0 {
		add("ssh.concurrency: must not be negative")
	}
	if time.Duration(c.Grace) < 0 {
		add("grace: must not be negative")
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		add("log.format: %q is not json or text", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	if len(c.Repos) == 0 {
		add("repos: list at least one repository")
	}
	seen := map[string]bool{}
	for i, r := range c.Repos {
		at := fmt.Sprintf("repos[%d]", i)
		if r.Name != "" {
			at = fmt.Sprintf("repos[%d] (%s)", i, r.Name)
		}
		if !repoNameRE.MatchString(r.Name) {
			add("%s.name: %q must match %s", at, r.Name, repoNameRE)
		} else if seen[r.Name] {
			add("%s.name: %q is used twice", at, r.Name)
		}
		seen[r.Name] = true
		if r.URL == "" {
			add("%s.url: missing", at)
		} else if u, err := url.Parse(r.URL); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok || u.Scheme == "https" || u.Scheme == "http" {
				add("%s.url: credentials do not belong in the URL; use git_token_env or git_token_file", at)
			}
		}
		if strings.ContainsAny(r.Branch, " ~^:?*[\\") || strings.HasPrefix(r.Branch, "-") {
			add("%s.branch: %q is not a branch name", at, r.Branch)
		}
		if strings.HasPrefix(r.Path, "/") || strings.Contains(r.Path, "..") {
			add("%s.path: %q must be a folder inside the repository", at, r.Path)
		}
		if time.Duration(r.Poll) < 5*time.Second {
			add("%s.poll: %s is too short (at least 5s)", at, time.Duration(r.Poll))
		}
		if r.ForgeRepo != "" && !forgeRepoRE.MatchString(r.ForgeRepo) {
			add("%s.forge_repo: %q is not owner/name", at, r.ForgeRepo)
		}
		if r.GitTokenEnv != "" && r.GitTokenFile != "" {
			add("%s: set one of git_token_env and git_token_file", at)
		}
		if r.Destination != "" && !destinationRE.MatchString(r.Destination) {
			add("%s.destination: %q is not a destination name (lowercase letters, digits, '-', '_')", at, r.Destination)
		}
		for _, n := range r.ERBEnv {
			if !envNameRE.MatchString(n) {
				add("%s.erb_env: %q is not an environment variable name", at, n)
			}
		}
	}
	return errors.Join(errs...)
}

// githubAPIRoot says what is wrong with u as GitHub's API root, or "".
// go-github appends api/v3/ to any root that is not api.HOST or …/api/v3/,
// so a Gitea root (/api/v1/) would silently become /api/v1/api/v3/: refuse
// it, with the reason.
func githubAPIRoot(u *url.URL) string {
	p := strings.TrimSuffix(u.Path, "/")
	switch {
	case p == "" || strings.HasSuffix(p, "/api/v3"):
		return ""
	case strings.HasSuffix(p, "/api/v1"):
		return "looks like Gitea's API: Gitea is not supported (its statuses and comments API differs); use kind: none for it"
	}
	return "is not a GitHub API root: use https://api.github.com/, or https://HOST/api/v3/ for GitHub Enterprise"
}
