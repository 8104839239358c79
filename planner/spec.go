package planner

import "time"

// This file holds the contract between the planner, the state store and the
// executor: the normalised container spec of one target, and the applied
// record the planner diffs against. Field names and JSON tags are part of the
// applied state's on-disk form: add fields, never rename them.

// Target names one container slot: one role of one service on one host.
// Host is the host's name as the plan knows it (an inventory name from
// fleet.yml, or the raw address when the service names one).
type Target struct {
	Service string `json:"service"`
	Role    string `json:"role"`
	Host    string `json:"host"`
}

// String returns "service/role@host".
func (t Target) String() string { return t.Service + "/" + t.Role + "@" + t.Host }

// Spec is the canonical description of the container bosun runs for one
// Target. Every value in it is validated; nothing in it is a secret value.
// Its Version is a hash of its canonical JSON form.
type Spec struct {
	Service string   `json:"service"`
	Role    string   `json:"role"`
	Image   string   `json:"image"`         // full reference: [registry/]repo[:tag][@digest]
	Cmd     []string `json:"cmd,omitempty"` // argv; empty means the image's CMD

	Env     map[string]string    `json:"env,omitempty"`     // clear values
	Secrets map[string]SecretRef `json:"secrets,omitempty"` // container env name -> secret

	Volumes []Volume          `json:"volumes,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"` // user labels; bosun.* labels are added by the executor
	Options Options           `json:"options"`
	Logging *Logging          `json:"logging,omitempty"`

	Proxy  *Proxy `json:"proxy,omitempty"`  // nil: the role is not proxied
	Health Health `json:"health,omitempty"` // for unproxied roles

	// Stateful is set for a role with a host volume and no proxy: it is
	// replaced stop-then-start, which the plan marks as disruptive.
	Stateful bool `json:"stateful,omitempty"`

	DeployTimeout  Duration `json:"deploy_timeout"`
	DrainTimeout   Duration `json:"drain_timeout"`
	StopTimeout    Duration `json:"stop_timeout,omitempty"`
	ReadinessDelay Duration `json:"readiness_delay"`
}

// SecretRef names the secret that fills one container env variable, and a
// keyed hash of its value (never the value), so that a changed value changes
// the spec's version.
type SecretRef struct {
	Name string `json:"name"` // the secret's name in the environment or secret files
	Hash string `json:"hash"` // "hmac-sha256:<hex>" of the value under the store's key
}

// Volume is one mount. Source is an absolute host path (a host volume, which
// makes an unproxied role stateful) or a named Docker volume.
type Volume struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Options are the documented subset of `docker run` options a service may
// set; each maps onto a field of Docker's container or host config.
type Options struct {
	Memory            string   `json:"memory,omitempty"`             // e.g. "512m"
	MemoryReservation string   `json:"memory_reservation,omitempty"` // e.g. "256m"
	CPUs              string   `json:"cpus,omitempty"`               // e.g. "1.5"
	Restart           string   `json:"restart,omitempty"`            // no|always|unless-stopped|on-failure[:N]; default unless-stopped
	AddHosts          []string `json:"add_hosts,omitempty"`          // "name:ip"
	CapAdd            []string `json:"cap_add,omitempty"`
	CapDrop           []string `json:"cap_drop,omitempty"`
	Ulimits           []string `json:"ulimits,omitempty"` // "nofile=1024:2048"
	Publish           []string `json:"publish,omitempty"` // "[ip:]hostPort:containerPort[/proto]"
	User              string   `json:"user,omitempty"`
	Workdir           string   `json:"workdir,omitempty"`
	ShmSize           string   `json:"shm_size,omitempty"`
	PidsLimit         int64    `json:"pids_limit,omitempty"`
	ReadOnly          bool     `json:"read_only,omitempty"`
	Init              bool     `json:"init,omitempty"`
	Tmpfs             []string `json:"tmpfs,omitempty"` // "/path[:opts]"
	StopSignal        string   `json:"stop_signal,omitempty"`
	// Network is a Docker network the container joins besides bosun's own
	// ("host" or "none" instead of it); NetworkAliases are extra names on
	// those networks.
	Network        string   `json:"network,omitempty"`
	NetworkAliases []string `json:"network_aliases,omitempty"`
	GroupAdd       []string `json:"group_add,omitempty"`   // supplementary groups (names or GIDs)
	MemorySwap     string   `json:"memory_swap,omitempty"` // size, or "-1" for unlimited swap
	Mounts         []string `json:"mounts,omitempty"`      // docker --mount syntax, see ParseMount
	SecurityOpt    []string `json:"security_opt,omitempty"`
	Privileged     bool     `json:"privileged,omitempty"`
	PID            string   `json:"pid,omitempty"` // "host"
}

// Logging is the container's log driver.
type Logging struct {
	Driver  string            `json:"driver,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

// Proxy is how bosun's proxy routes to a proxied role.
type Proxy struct {
	Hosts      []string `json:"hosts,omitempty"` // empty: the catch-all route
	PathPrefix string   `json:"path_prefix,omitempty"`
	AppPort    int      `json:"app_port"`
	SSL        bool     `json:"ssl,omitempty"`
	// Certificate is a custom TLS certificate for Hosts (Kamal's proxy.ssl
	// map): the secrets holding it, never their values. nil with SSL: an
	// automatic (ACME) certificate.
	Certificate     *ProxyCertificate `json:"certificate,omitempty"`
	HealthPath      string            `json:"health_path"`
	HealthInterval  Duration          `json:"health_interval"`
	HealthTimeout   Duration          `json:"health_timeout"`
	ResponseTimeout Duration          `json:"response_timeout"`
}

// ProxyCertificate names the secrets of a custom TLS certificate: the PEM
// certificate (leaf first, then its chain) and the PEM private key, with
// keyed hashes of their values, so that a renewed certificate changes the
// spec's version.
type ProxyCertificate struct {
	CertificatePEM SecretRef `json:"certificate_pem"`
	PrivateKeyPEM  SecretRef `json:"private_key_pem"`
}

// Health is Docker's health check for unproxied roles. An empty Cmd means
// readiness is judged by ReadinessDelay after the container runs.
type Health struct {
	Cmd      []string `json:"cmd,omitempty"` // e.g. ["CMD-SHELL", "pg_isready -U app"] or ["CMD", "redis-cli", "ping"]
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	Retries  int      `json:"retries,omitempty"`
	// StartPeriod is Docker's health start period (options.health-start-period).
	StartPeriod Duration `json:"start_period,omitempty"`
}

// Duration is a time.Duration that encodes as a Go duration string ("30s").
type Duration time.Duration

// Applied is what the state store records for a target once its container
// served healthily: the spec, its version, and the commit it came from.
type Applied struct {
	Target
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Spec    Spec   `json:"spec"`
	// Conn is how the host was reached when the spec was applied (nil when
	// not recorded): a change of address, port, user or jump host in
	// fleet.yml is then a plan change.
	Conn *Host `json:"conn,omitempty"`
}
