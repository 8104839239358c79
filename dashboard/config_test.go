package dashboard

import (
	"strings"
	"testing"
)

func TestConfig_Validate(t *testing.T) {
	good := Config{BaseURL: "https://bosun.example.com", GitHub: GitHubConfig{ClientID: "id", ClientSecretEnv: "BOSUN_OAUTH_SECRET", WebURL: "https://ghe.example.com", APIURL: "https://ghe.example.com/api/v3/"}, Roles: rules}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("empty config (tokens only): %v", err)
	}
	for want, edit := range map[string]func(c *Config){
		"dashboard.listen":                  func(c *Config) { c.Listen = "8081" },
		"dashboard.base_url: needed":        func(c *Config) { c.BaseURL = "" },
		"has a path":                        func(c *Config) { c.BaseURL = "https://x.example.com/bosun" },
		"not an http(s) URL":                func(c *Config) { c.BaseURL = "ftp://x" },
		"client_secret_env or":              func(c *Config) { c.GitHub.ClientSecretEnv = "" },
		"not both":                          func(c *Config) { c.GitHub.ClientSecretFile = "/run/s" },
		"not an environment variable":       func(c *Config) { c.GitHub.ClientSecretEnv = "A-B" },
		"nobody can log in":                 func(c *Config) { c.Roles = nil },
		"dashboard.github.api_url":          func(c *Config) { c.GitHub.APIURL = "ghe.example.com" },
		"credentials do not belong":         func(c *Config) { c.GitHub.WebURL = "https://u:p@ghe.example.com" },
		"a team needs its org":              func(c *Config) { c.Roles = []RoleRule{{Team: "ops", Role: Viewer}} },
		"names a user, or an org":           func(c *Config) { c.Roles = []RoleRule{{User: "a", Org: "b", Role: Viewer}} },
		"name a user or an org":             func(c *Config) { c.Roles = []RoleRule{{Role: Viewer}} },
		"is not viewer, deployer or admin":  func(c *Config) { c.Roles = []RoleRule{{Org: "acme"}} },
		"is not a team slug":                func(c *Config) { c.Roles = []RoleRule{{Org: "acme", Team: "Ops Team", Role: Viewer}} },
		"is not a GitHub login":             func(c *Config) { c.Roles = []RoleRule{{User: "-x", Role: Viewer}} },
		"a client secret without client_id": func(c *Config) { c.GitHub.ClientID = "" },
	} {
		c := good
		c.Roles = append([]RoleRule(nil), good.Roles...)
		edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error containing %q, got %v", want, err)
		}
	}
}

func TestRoleOf(t *testing.T) {
	for _, c := range []struct {
		m    Membership
		want Role
	}{
		{Membership{Login: "alice", Orgs: []string{"ACME"}, Teams: []string{"acme/OPS"}}, Deployer}, // GitHub names are case-insensitive
		{Membership{Login: "bob", Orgs: []string{"acme"}}, Viewer},
		{Membership{Login: "Root"}, Admin},
		{Membership{Login: "eve", Orgs: []string{"evil"}, Teams: []string{"evil/ops"}}, None},
		{Membership{Login: "mallory", Teams: []string{"acme/ops"}}, Deployer},
	} {
		if got := RoleOf(rules, c.m); got != c.want {
			t.Errorf("RoleOf(%+v) = %s, want %s", c.m, got, c.want)
		}
	}
}
