package proxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"
)

// service is one deployed route: its settings and its current target. A
// service value never changes; a deploy makes a new one and a new table.
type service struct {
	req     DeployRequest    // with defaults, validated
	cert    *tls.Certificate // req's custom certificate, parsed; nil: none
	since   time.Time        // when this target started serving
	target  *target
	metrics *serviceMetrics
}

// table is an immutable routing table. The server swaps whole tables
// through an atomic pointer, so a request sees either the old route or the
// new one, never a mix.
type table struct {
	services map[string]*service         // by name
	exact    map[string][]*service       // host → services, longest path prefix first
	wildcard map[string][]*service       // "example.com" for "*.example.com"
	catchAll []*service                  // routes with no host
	certs    map[string]*tls.Certificate // custom certificates by host ("*.example.com" for a wildcard)
}

// buildTable indexes services. Two services may not own the same host (or
// both be catch-all) with the same path prefix.
func buildTable(services map[string]*service) (*table, error) {
	t := &table{services: services, exact: map[string][]*service{}, wildcard: map[string][]*service{}, certs: map[string]*tls.Certificate{}}
	certOwner := map[string]string{}
	owner := map[string]string{} // "host path" → service
	claim := func(key, name string) error {
		if o, ok := owner[key]; ok && o != name {
			return fmt.Errorf("%w: %s is already routed to service %q", ErrConflict, key, o)
		}
		owner[key] = name
		return nil
	}
	names := make([]string, 0, len(services))
	for name := range services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		svc := services[name]
		prefix := svc.req.PathPrefix
		if len(svc.req.Hosts) == 0 {
			if err := claim("(any host)"+prefix, name); err != nil {
				return nil, err
			}
			t.catchAll = append(t.catchAll, svc)
			continue
		}
		for _, h := range svc.req.Hosts {
			if err := claim(h+prefix, name); err != nil {
				return nil, err
			}
			if svc.cert != nil {
				// SNI names a host, not a path: one certificate per host.
				if o, ok := certOwner[h]; ok && !bytes.Equal(t.certs[h].Certificate[0], svc.cert.Certificate[0]) {
					return nil, fmt.Errorf("%w: host %s has another custom certificate, from service %q", ErrConflict, h, o)
				}
				certOwner[h], t.certs[h] = name, svc.cert
			}
			if parent, ok := strings.CutPrefix(h, "*."); ok {
				t.wildcard[parent] = append(t.wildcard[parent], svc)
			} else {
				t.exact[h] = append(t.exact[h], svc)
			}
		}
	}
	byPrefix := func(l []*service) {
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].req.PathPrefix) > len(l[j].req.PathPrefix) })
	}
	for _, l := range t.exact {
		byPrefix(l)
	}
	for _, l := range t.wildcard {
		byPrefix(l)
	}
	byPrefix(t.catchAll)
	return t, nil
}

// match finds the service for a request: exact host, then a *.parent
// wildcard, then the catch-all routes; within each, the longest path prefix.
func (t *table) match(host, path string) *service {
	if l, ok := t.exact[host]; ok {
		if s := matchPath(l, path); s != nil {
			return s
		}
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		if l, ok := t.wildcard[host[i+1:]]; ok {
			if s := matchPath(l, path); s != nil {
				return s
			}
		}
	}
	return matchPath(t.catchAll, path)
}

func matchPath(l []*service, path string) *service {
	for _, s := range l {
		if pathHasPrefix(path, s.req.PathPrefix) {
			return s
		}
	}
	return nil
}

// pathHasPrefix reports whether path is prefix or lies below it: "/api"
// matches "/api" and "/api/x" but not "/apix".
func pathHasPrefix(path, prefix string) bool {
	if prefix == "/" {
		return true
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// tlsHost reports whether a TLS route names host exactly.
func (t *table) tlsHost(host string) bool {
	for _, s := range t.exact[host] {
		if s.req.TLS {
			return true
		}
	}
	return false
}

// normalizeHost turns a Host header into a lookup key: lower case, no port,
// no trailing dot. It does not allocate for the common already-clean case.
func normalizeHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		} else if strings.Count(h, ":") == 1 {
			h = h[:i]
		}
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
