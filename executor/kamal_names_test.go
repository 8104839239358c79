package executor

import (
	"testing"

	"github.com/docker/docker/api/types/container"
)

// TestKamalNames: Kamal's containers are told by their names and labels,
// not guessed; what is shaped otherwise is not Kamal's.
func TestKamalNames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   bool
		role   string
	}{
		{"shop-web-0123abc", map[string]string{"service": "shop", "role": "web", "destination": ""}, true, "web"},
		{"shop-web-staging-0123abc", map[string]string{"service": "shop", "role": "web", "destination": "staging"}, true, "web"},
		{"shop-db", map[string]string{"service": "shop-db"}, true, ""},
		{"shop-web-0123abc", map[string]string{"service": "shop", "role": "web"}, false, ""},                                    // no destination label
		{"other-0123abc", map[string]string{"service": "shop", "role": "web", "destination": ""}, false, ""},                    // name not <service>-<role>-
		{"shop-web-", map[string]string{"service": "shop", "role": "web", "destination": ""}, false, ""},                        // no version
		{"db", map[string]string{"service": "shop-db"}, false, ""},                                                              // accessory named otherwise
		{"shop-web-1", map[string]string{"service": "shop", "role": "web", "destination": "", LabelService: "shop"}, false, ""}, // bosun's
	} {
		k, ok := kamalOf(container.Summary{Names: []string{"/" + tc.name}, Labels: tc.labels})
		if ok != tc.want || (ok && k.Role != tc.role) {
			t.Errorf("kamalOf(%s, %v) = %+v, %v; want %v role %q", tc.name, tc.labels, k, ok, tc.want, tc.role)
		}
	}
	for _, tc := range []struct {
		image  string
		labels map[string]string
		want   bool
	}{
		{"basecamp/kamal-proxy:v0.9.2", nil, true},
		{"registry.example.com:5000/basecamp/kamal-proxy:v0.9.2", nil, true},
		{"basecamp/kamal-proxy@sha256:0123", nil, true},
		{"sha256:0123", map[string]string{"org.opencontainers.image.title": "kamal-proxy"}, true},
		{"nginx:latest", nil, false},
		{"example.com:5000/kamal-proxy-fork:1", nil, false},
	} {
		if got := isKamalProxy(tc.labels, tc.image); got != tc.want {
			t.Errorf("isKamalProxy(%v, %s) = %v, want %v", tc.labels, tc.image, got, tc.want)
		}
	}
}
