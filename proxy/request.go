package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults for a DeployRequest's zero fields; they match kamal-proxy's.
const (
	DefaultHealthPath      = "/up"
	DefaultHealthInterval  = time.Second
	DefaultHealthTimeout   = 5 * time.Second
	DefaultDeployTimeout   = 30 * time.Second
	DefaultDrainTimeout    = 30 * time.Second
	DefaultResponseTimeout = 30 * time.Second

	maxTimeout         = time.Hour
	maxControlBodySize = 256 << 10 // room for a certificate chain and its key
)

// Duration is a time.Duration that travels in JSON as a Go duration string
// ("1.5s"). The zero value means "use the default".
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "30s" or "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DeployRequest asks the proxy to route a service to a target. Zero
// durations and an empty HealthPath take the Default* values.
type DeployRequest struct {
	Service     string   `json:"service"`
	Target      string   `json:"target"`          // HOST:PORT the proxy can reach (container name on the bosun network, or an address)
	Hosts       []string `json:"hosts,omitempty"` // exact names or "*.example.com"; empty: the catch-all route
	PathPrefix  string   `json:"path_prefix,omitempty"`
	StripPrefix bool     `json:"strip_prefix,omitempty"`
	TLS         bool     `json:"tls,omitempty"` // certificates for Hosts; HTTP is redirected to HTTPS
	// TLSCertificate and TLSKey are a custom certificate for Hosts (PEM:
	// the leaf, then its chain; and its private key), served by SNI
	// instead of an ACME or local-CA one; they need TLS. The control API
	// never lists them (Route.Certificate describes the certificate).
	TLSCertificate  string   `json:"tls_certificate,omitempty"`
	TLSKey          string   `json:"tls_key,omitempty"`
	HealthPath      string   `json:"health_path,omitempty"`
	HealthInterval  Duration `json:"health_interval,omitempty"`
	HealthTimeout   Duration `json:"health_timeout,omitempty"`
	DeployTimeout   Duration `json:"deploy_timeout,omitempty"`
	DrainTimeout    Duration `json:"drain_timeout,omitempty"`
	ResponseTimeout Duration `json:"response_timeout,omitempty"`
}

// ValidationError says which field of a request is wrong and why.
type ValidationError struct {
	Field, Msg string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Msg }

var (
	serviceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	labelRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// targetHostRE admits DNS names and Docker container names and ids.
	targetHostRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
)

// DecodeDeployRequest reads one JSON DeployRequest (unknown fields are an
// error, at most 64 KiB), fills in the defaults and validates it.
func DecodeDeployRequest(r io.Reader) (DeployRequest, error) {
	var req DeployRequest
	dec := json.NewDecoder(io.LimitReader(r, maxControlBodySize+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return DeployRequest{}, fmt.Errorf("decode deploy request: %w", err)
	}
	if dec.InputOffset() > maxControlBodySize {
		return DeployRequest{}, fmt.Errorf("decode deploy request: body larger than %d bytes", maxControlBodySize)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return DeployRequest{}, errors.New("decode deploy request: trailing data after the JSON object")
	}
	req = req.withDefaults()
	if err := req.Validate(); err != nil {
		return DeployRequest{}, err
	}
	return req, nil
}

// withDefaults returns req with its zero settings replaced by the defaults,
// host names lowercased and sorted as given.
func (req DeployRequest) withDefaults() DeployRequest {
	if req.HealthPath == "" {
		req.HealthPath = DefaultHealthPath
	}
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&req.HealthInterval, DefaultHealthInterval)
	def(&req.HealthTimeout, DefaultHealthTimeout)
	def(&req.DeployTimeout, DefaultDeployTimeout)
	def(&req.DrainTimeout, DefaultDrainTimeout)
	def(&req.ResponseTimeout, DefaultResponseTimeout)
	if req.PathPrefix == "" {
		req.PathPrefix = "/"
	}
	if len(req.PathPrefix) > 1 {
		req.PathPrefix = strings.TrimRight(req.PathPrefix, "/")
		if req.PathPrefix == "" {
			req.PathPrefix = "/"
		}
	}
	hosts := make([]string, 0, len(req.Hosts))
	for _, h := range req.Hosts {
		hosts = append(hosts, strings.TrimSuffix(strings.ToLower(h), "."))
	}
	req.Hosts = hosts
	return req
}

// Validate checks every field of a request whose defaults are filled in.
// A custom certificate must be valid now.
func (req DeployRequest) Validate() error { return req.validate(true) }

// validate is Validate; without checkTime an expired custom certificate
// passes (see restore).
func (req DeployRequest) validate(checkTime bool) error {
	if !serviceRE.MatchString(req.Service) {
		return &ValidationError{"service", fmt.Sprintf("%q must be 1-63 of a-z, 0-9, '_', '.', '-', starting with a letter or digit", req.Service)}
	}
	if err := validateTarget(req.Target); err != nil {
		return &ValidationError{"target", err.Error()}
	}
	seen := map[string]bool{}
	for _, h := range req.Hosts {
		if err := validateHost(h); err != nil {
			return &ValidationError{"hosts", err.Error()}
		}
		if seen[h] {
			return &ValidationError{"hosts", fmt.Sprintf("%q is listed twice", h)}
		}
		seen[h] = true
	}
	if err := validatePath(req.PathPrefix); err != nil {
		return &ValidationError{"path_prefix", err.Error()}
	}
	if err := validatePath(req.HealthPath); err != nil {
		return &ValidationError{"health_path", err.Error()}
	}
	custom := req.TLSCertificate != "" || req.TLSKey != ""
	if custom && !req.TLS {
		return &ValidationError{"tls_certificate", "a custom certificate needs tls"}
	}
	if req.TLS {
		if len(req.Hosts) == 0 {
			return &ValidationError{"tls", "needs at least one host"}
		}
		for _, h := range req.Hosts {
			if strings.HasPrefix(h, "*.") && !custom {
				return &ValidationError{"tls", fmt.Sprintf("no certificate can be issued for the wildcard %q: give a custom certificate for it", h)}
			}
		}
	}
	if custom {
		if _, err := parseCertificate(req.TLSCertificate, req.TLSKey, req.Hosts, checkTime); err != nil {
			return &ValidationError{"tls_certificate", err.Error()}
		}
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{
		{"health_interval", req.HealthInterval}, {"health_timeout", req.HealthTimeout},
		{"deploy_timeout", req.DeployTimeout}, {"drain_timeout", req.DrainTimeout},
		{"response_timeout", req.ResponseTimeout},
	} {
		if d.v <= 0 || time.Duration(d.v) > maxTimeout {
			return &ValidationError{d.name, fmt.Sprintf("%s must be between 0 and %s", time.Duration(d.v), maxTimeout)}
		}
	}
	return nil
}

func validateTarget(t string) error {
	host, port, err := net.SplitHostPort(t)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", t)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port must be 1-65535", t)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > 253 || !targetHostRE.MatchString(host) {
		return fmt.Errorf("%q: host must be an IP address, a DNS name or a container name", t)
	}
	return nil
}

func validateHost(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name != h && !strings.Contains(name, ".") {
		return fmt.Errorf("wildcard %q needs a parent domain with a dot", h)
	}
	if net.ParseIP(name) != nil && name == h {
		return nil
	}
	return validateDNSName(name)
}

func validateDNSName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("host name %q must be 1-253 characters", name)
	}
	for l := range strings.SplitSeq(name, ".") {
		if !labelRE.MatchString(l) {
			return fmt.Errorf("host name %q: label %q must be 1-63 of a-z, 0-9, '-'", name, l)
		}
	}
	return nil
}

func validatePath(p string) error {
	if !strings.HasPrefix(p, "/") || len(p) > 1024 {
		return fmt.Errorf("%q must start with '/' and be at most 1024 bytes", p)
	}
	for _, c := range []byte(p) {
		if c <= ' ' || c == 0x7f || c == '?' || c == '#' {
			return fmt.Errorf("%q holds a space, control character, '?' or '#'", p)
		}
	}
	return nil
}
