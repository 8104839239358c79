package main

import (
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/bosunhq/bosun/daemon"
	"github.com/bosunhq/bosun/dashboard"
	"github.com/bosunhq/bosun/executor"
	"github.com/bosunhq/bosun/metrics"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
	"github.com/bosunhq/bosun/webhook"
)

func init() {
	register(&command{name: "serve", summary: "run the GitOps daemon: watch repositories, take webhooks, deploy, report", run: runServe})
}

func runServe(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("serve", "bosun serve --config bosun.yaml", `
Run the daemon: keep a clone of every configured config repository, fetch
on push webhooks (POST /hooks/github) and on a poll timer, and deploy each
tracked branch's newest commit; plan pull requests and post the plan as one
comment per pull request, with bosun/plan and bosun/deploy commit statuses.
GET /healthz and GET /readyz are the probes. The dashboard, its JSON API
under /api/v1 and the Prometheus metrics at /metrics are served beside them,
or on dashboard.listen, behind login or an API token (bosun token create;
see docs/dashboard.md). The config file is watched: a valid change takes
effect without dropping running work; an invalid one is logged and the old
config kept. See docs/daemon.md.`, e)
	configPath := fs.String("config", "bosun.yaml", "the daemon's configuration `file`")
	initStore := initFlag(fs)
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	cfg, err := daemon.LoadConfig(*configPath)
	if err != nil {
		return 1, err
	}
	log := daemonLogger(cfg.Log, e.stderr)

	hookSecret, err := planner.ReadSecret(e.getenv, cfg.Webhook.SecretEnv, cfg.Webhook.SecretFile)
	if err != nil {
		return 1, fmt.Errorf("webhook secret: %w", err)
	}
	secrets, err := planner.LoadSecrets(e.getenv, cfg.Secrets.Sources())
	if err != nil {
		return 1, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return 1, err
	}
	st, err := openStore(ctx, cfg.State, *initStore)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	m := metrics.New()
	reporter, err := newReporter(cfg.Forge, e.getenv, secrets, m, log)
	if err != nil {
		return 1, err
	}
	x, err := executor.New(executor.Config{
		KeyFiles:        nonEmpty(cfg.SSH.Key),
		AgentSocket:     e.getenv("SSH_AUTH_SOCK"),
		KnownHostsFile:  cfg.SSH.KnownHosts,
		TrustOnFirstUse: cfg.SSH.TrustOnFirstUse,
		Concurrency:     cfg.SSH.Concurrency,
		Store:           st,
		Secrets:         secrets,
		ProxyImage:      e.getenv("BOSUN_PROXY_IMAGE"),
		ProxyRepository: e.getenv("BOSUN_PROXY_REPOSITORY"),
		ProxyBinary:     e.getenv("BOSUN_PROXY_BINARY"),
		Version:         buildVersion(),
		Owner:           fmt.Sprintf("bosun serve pid %d", os.Getpid()),
		// A killed daemon's rollout lock holds up the run that resumes its
		// job (docs/daemon.md, "A daemon that dies") until the lease ends.
		LockLease: 20 * time.Second,
		Logger:    log,
	})
	if err != nil {
		return 1, err
	}
	defer x.Close()

	ref := &daemonRef{}
	// The fleet's live check reads the servers as bosun status does.
	status := func(ctx context.Context, hosts []planner.Host) ([]executor.ContainerStatus, error) {
		return x.Status(ctx, hosts, false)
	}
	dash, err := newDashboard(ctx, cfg.Dashboard, st, ref, status, m, e.getenv, log)
	if err != nil {
		return 1, err
	}
	var dashLn net.Listener
	if cfg.Dashboard.Listen != "" {
		if dashLn, err = net.Listen("tcp", cfg.Dashboard.Listen); err != nil {
			return 1, fmt.Errorf("dashboard: %w", err)
		}
		defer dashLn.Close()
	}
	d, err := daemon.New(cfg, daemon.Deps{
		Store:    st,
		Applier:  x,
		Reporter: reporter,
		Secrets:  secrets,
		NewQueue: func(ctx context.Context, workers *river.Workers) (daemon.Queue, error) {
			return newQueue(ctx, st, workers, log)
		},
		Getenv:            e.getenv,
		Logger:            log,
		Metrics:           m,
		Dashboard:         dash,
		DashboardListener: dashLn,
	})
	if err != nil {
		return 1, err
	}
	ref.d = d
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return 1, err
	}
	go func() {
		if err := d.WatchConfig(ctx, *configPath); err != nil {
			log.WarnContext(ctx, "config file not watched", "err", err)
		}
	}()
	hooks := webhook.NewHandler(webhook.Config{Secret: []byte(hookSecret), Logger: log}, d.Enqueue)
	if err := d.Run(ctx, hooks, ln); err != nil {
		return 1, err
	}
	return 0, nil
}

// newDashboard builds the dashboard from its config section: the OAuth
// client secret read from its env or file, the cookie key derived from the
// store's secret key.
func newDashboard(ctx context.Context, dc dashboard.Config, st state.Store, d *daemonRef, status dashboard.StatusFunc, m *metrics.Metrics, getenv func(string) string, log *slog.Logger) (*dashboard.Server, error) {
	var clientSecret string
	if dc.OAuth() {
		var err error
		if clientSecret, err = planner.ReadSecret(getenv, dc.GitHub.ClientSecretEnv, dc.GitHub.ClientSecretFile); err != nil {
			return nil, fmt.Errorf("dashboard OAuth client secret: %w", err)
		}
	}
	key, err := st.SecretKey(ctx)
	if err != nil {
		return nil, err
	}
	return dashboard.New(dashboard.Options{Config: dc, ClientSecret: clientSecret, SecretKey: key, Store: st, Daemon: d, Changes: d, Status: status,
		Metrics: m.Handler(), ForgeCall: m.ForgeCall, Logger: log})
}

// daemonRef is the dashboard's view of the daemon, which is made after the
// dashboard (the daemon serves it).
type daemonRef struct{ d *daemon.Daemon }

func (r *daemonRef) Repos() []string { return r.d.Repos() }
func (r *daemonRef) Head(ctx context.Context, repo string) (iofs.FS, string, error) {
	return r.d.Head(ctx, repo)
}
func (r *daemonRef) Check(ctx context.Context, repo, sha string, fsys iofs.FS) error {
	return r.d.Check(ctx, repo, sha, fsys)
}
func (r *daemonRef) Propose(ctx context.Context, repo string, p webhook.Proposal) (webhook.ProposedPR, error) {
	return r.d.Propose(ctx, repo, p)
}
func (r *daemonRef) Rollback(ctx context.Context, repo, service, to, actor, reason string) error {
	return r.d.Rollback(ctx, repo, service, to, actor, reason)
}

// Servers makes the daemon a dashboard.ServerLister.
func (r *daemonRef) Servers(repo string) ([]planner.Host, map[string][]string, bool) {
	sv := r.d.Servers(repo)
	if sv == nil {
		return nil, nil, false
	}
	return sv.Hosts, sv.Tags, true
}
func (r *daemonRef) Sync(ctx context.Context, repo, actor string) error {
	return r.d.Sync(ctx, repo, actor)
}

// newQueue makes River's client on the store's own database.
func newQueue(ctx context.Context, st state.Store, workers *river.Workers, log *slog.Logger) (daemon.Queue, error) {
	switch s := st.(type) {
	case *state.SQLite:
		return daemon.NewQueue(ctx, riversqlite.New(s.DB()), workers, 1, log)
	case *state.Postgres:
		return daemon.NewQueue(ctx, riverpgxv5.New(s.Pool()), workers, 4, log)
	}
	return nil, fmt.Errorf("no queue for a %T store", st)
}

// newReporter builds the forge reporter; nil when the config reports to
// no forge. Deploy statuses are redacted of every known secret value and
// the token, which secrets hides from then on (plans are posted as made:
// see webhook.ReporterConfig.Redact).
func newReporter(fc daemon.ForgeConfig, getenv func(string) string, secrets *planner.Secrets, m *metrics.Metrics, log *slog.Logger) (*webhook.Reporter, error) {
	if fc.Kind != "github" {
		return nil, nil
	}
	gc := webhook.GitHubConfig{BaseURL: fc.BaseURL, AppID: fc.AppID, InstallationID: fc.InstallationID, Observe: m.ForgeCall}
	if fc.AppID != 0 {
		pemBytes, err := os.ReadFile(fc.AppKeyFile)
		if err != nil {
			return nil, fmt.Errorf("GitHub App key: %w", err)
		}
		if gc.AppKey, err = webhook.ParseAppKey(pemBytes); err != nil {
			return nil, err
		}
	} else {
		token, err := planner.ReadSecret(getenv, fc.TokenEnv, fc.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("forge token: %w", err)
		}
		secrets.Hide(token)
		gc.Token = token
	}
	rep, err := webhook.NewGitHubReporter(gc, webhook.ReporterConfig{Redact: secrets.Redact, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("forge: %w", err)
	}
	return rep, nil
}

// daemonLogger builds the daemon's logger from its config.
func daemonLogger(lc daemon.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(lc.Level))
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func nonEmpty(s ...string) []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
