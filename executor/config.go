package executor

import (
	"log/slog"
	"time"

	"golang.org/x/crypto/ssh"
)

// Config configures an Executor. The zero value of every field has a
// working default except the SSH credentials: give KeyFiles, Signers or an
// AgentSocket (New falls back to the default ~/.ssh/id_* files).
type Config struct {
	// SSH.
	User            string        // SSH user when a host names none; default "root"
	KeyFiles        []string      // private key files (--ssh-key); empty: ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exist
	Signers         []ssh.Signer  // extra signers, e.g. from a test harness
	AgentSocket     string        // SSH agent socket (the CLI passes $SSH_AUTH_SOCK); "" means no agent
	KnownHostsFile  string        // default ~/.ssh/known_hosts
	TrustOnFirstUse bool          // record the key of an unknown host instead of refusing it
	DialFunc        DialFunc      // nil means TCP
	KeepAlive       time.Duration // keepalive request interval; default 15s
	ConnectTimeout  time.Duration // dial plus SSH handshake; default 15s
	Concurrency     int           // hosts worked on at once; default 32 (DefaultConcurrency)

	// Deploying.
	Store   Store        // applied state, deployments, events, locks; nil: nothing is recorded and no lock is taken
	Secrets SecretSource // values for Spec.Secrets and registry credentials; nil: none available
	Owner   string       // lock owner, e.g. "bosun apply pid 123 on host"; default derived from the process
	// LockLease is how long the per-service lock lasts without renewal;
	// default 1m, renewed every third of it while a rollout runs.
	LockLease time.Duration
	// ProxyBinary is the bosun binary the proxy image is built from when
	// it is a static Linux executable of the server's architecture
	// (checked with debug/elf); default os.Executable() (BOSUN_PROXY_BINARY:
	// a Linux build beside a bosun running on a Mac).
	ProxyBinary string
	// ProxyImage, when set, is a registry reference to pull for the proxy
	// on every server instead of anything else (BOSUN_PROXY_IMAGE).
	ProxyImage string
	// Version is bosun's version. A release version (vX.Y.Z) has a
	// published proxy image, ProxyRepository:Version, pulled by servers
	// that ProxyBinary cannot serve.
	Version string
	// ProxyRepository is where the published proxy images are; default
	// DefaultProxyRepository (BOSUN_PROXY_REPOSITORY).
	ProxyRepository string
	// ProxyHTTPPort and ProxyHTTPSPort are the host ports the proxy
	// publishes; default 80 and 443.
	ProxyHTTPPort, ProxyHTTPSPort int

	Logger   *slog.Logger // nil means slog.Default()
	Progress func(Event)  // called for every event, from several goroutines one at a time; may be nil
}

// SecretSource gives secret values by name; planner.SecretSource satisfies it.
type SecretSource interface {
	LookupSecret(name string) (value string, ok bool)
}
