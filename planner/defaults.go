package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// DefaultRetainContainers is retain_containers when a service does not set
// it: how many stopped containers of a role a host keeps (Kamal's 5). The
// executor applies it to a plan whose Service has none.
const DefaultRetainContainers = 5

// DefaultDeployTimeout and DefaultDrainTimeout are deploy_timeout and
// drain_timeout when a service sets none, as Kamal's (and kamal-proxy's,
// proxy.DefaultDeployTimeout and proxy.DefaultDrainTimeout). The executor
// falls back to them for a spec without them.
const (
	DefaultDeployTimeout = 30 * time.Second
	DefaultDrainTimeout  = 30 * time.Second
)

// Defaults, as Kamal's (docs/config.md lists them).
const (
	defaultReadinessDelay    = 7 * time.Second
	defaultProxyStopTimeout  = 10 * time.Second // Docker's own default, used by Kamal for proxied roles
	defaultAppPort           = 80
	defaultHealthPath        = "/up"
	defaultHealthInterval    = 1 * time.Second
	defaultHealthTimeout     = 5 * time.Second
	defaultResponseTimeout   = 30 * time.Second
	defaultRestart           = "unless-stopped"
	defaultLogMaxSize        = "10m"
	defaultHealthCmdInterval = 10 * time.Second
	defaultHealthCmdTimeout  = 5 * time.Second
	defaultHealthCmdRetries  = 3
	defaultCanaryWatch       = 30 * time.Second
	defaultSSHUser           = "root"
	defaultSSHPort           = 22
)

// Version returns the spec's version: the first 12 hex characters of the
// SHA-256 of its canonical JSON (struct fields in declaration order, map
// keys sorted, durations as Go duration strings). Equal specs have equal
// versions; the target's host is not part of the spec.
func (s Spec) Version() string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("planner: marshal spec: %v", err)) // a Spec has only marshalable fields
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// String returns the Go duration string, e.g. "30s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON encodes the duration as a Go duration string ("1m30s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts a Go duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: want a string such as \"30s\": %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}
