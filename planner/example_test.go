package planner_test

import (
	"context"
	"fmt"
	"os"
	"testing/fstest"

	"github.com/bosunhq/bosun/planner"
)

// ExamplePlan_WriteTo plans a one-service repository against an applied
// state that runs the previous image tag, and prints the text plan: a
// summary line, then each service that changes with every target's action,
// its version (old -> new) and the changed fields.
func ExamplePlan_WriteTo() {
	repo := fstest.MapFS{
		"fleet.yml": {Data: []byte(`
servers:
  web-1: {host: 10.0.0.11, tags: [web]}
  web-2: {host: 10.0.0.12, tags: [web]}
`)},
		"services/shop.yml": {Data: []byte(`
service: shop
image: ghcr.io/acme/shop:v1.2.4
servers: [tag:web]
proxy: {host: shop.example.com, app_port: 3000}
env:
  clear: {RAILS_ENV: production}
`)},
	}
	p := planner.New(planner.Config{SecretKey: []byte("example")})
	ctx := context.Background()

	// What the state store would hold after deploying v1.2.3 on web-1.
	old := fstest.MapFS{"fleet.yml": repo["fleet.yml"], "services/shop.yml": {Data: []byte(`
service: shop
image: ghcr.io/acme/shop:v1.2.3
servers: [web-1]
proxy: {host: shop.example.com, app_port: 3000}
env:
  clear: {RAILS_ENV: production}
`)}}
	before, err := p.Plan(ctx, old, planner.Input{Repo: "fleet"})
	if err != nil {
		fmt.Println(err)
		return
	}
	var applied []planner.Applied
	for _, c := range before.Changes {
		applied = append(applied, planner.Applied{Target: c.Target, Version: c.Version, Spec: *c.Desired})
	}

	plan, err := p.Plan(ctx, repo, planner.Input{Repo: "fleet", Commit: "9f8e7d6c5b4a39281706", Applied: applied})
	if err != nil {
		fmt.Println(err) // an invalid commit: every error as file:line:col: message
		return
	}
	plan.WriteTo(os.Stdout)
	// Output:
	// Plan for fleet at 9f8e7d6c5b4a: 1 to create, 1 to update, 0 to remove, 0 unchanged, 0 held.
	//
	// service shop
	//   ~ update web@web-1  6161936953bb -> e2dbd9fb24e2
	//       image: ghcr.io/acme/shop:v1.2.3 -> ghcr.io/acme/shop:v1.2.4
	//   + create web@web-2  e2dbd9fb24e2
	//       deploy_timeout: 30s
	//       drain_timeout: 30s
	//       env.RAILS_ENV: production
	//       image: ghcr.io/acme/shop:v1.2.4
	//       logging.options.max-size: 10m
	//       options.restart: unless-stopped
	//       proxy.app_port: 3000
	//       proxy.health_interval: 1s
	//       proxy.health_path: /up
	//       proxy.health_timeout: 5s
	//       proxy.hosts: "[\"shop.example.com\"]"
	//       proxy.response_timeout: 30s
	//       readiness_delay: 7s
	//       stop_timeout: 10s
	//
	// Takeover from Kamal:
	//   - web-2: bosun-proxy comes to this server. If kamal-proxy serves there, bosun takes over: shop/web started and health-checked first, then kamal-proxy stopped and its ports given to bosun-proxy; Kamal's containers of these targets stopped and kept (bosun apply --remove-kamal removes them); accessory data stays where Kamal put it (docs/migrating-from-kamal.md)
}
