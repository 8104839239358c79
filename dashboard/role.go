package dashboard

import (
	"fmt"
	"strings"
)

// Role is what a person or a token may do. Each role may do everything the
// roles below it may.
type Role int

// The roles, lowest first. None is no role: not logged in, or matched by
// no rule.
const (
	None Role = iota
	// Viewer reads every page and the API (bosun holds no secret in clear
	// to show).
	Viewer
	// Deployer adds the actions: cancel, hold, release, rollback, sync.
	Deployer
	// Admin adds what changes the configuration directly.
	Admin
)

var roleNames = []string{"none", "viewer", "deployer", "admin"}

func (r Role) String() string {
	if r < None || r > Admin {
		return fmt.Sprintf("role(%d)", int(r))
	}
	return roleNames[r]
}

// Valid says whether r is viewer, deployer or admin.
func (r Role) Valid() bool { return r >= Viewer && r <= Admin }

// ParseRole reads viewer, deployer or admin.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames[1:] {
		if s == n {
			return Role(i + 1), nil
		}
	}
	return None, fmt.Errorf("role %q is not viewer, deployer or admin", s)
}

// MarshalText writes the role's name.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads viewer, deployer or admin.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Membership is what the forge says of a user: their login, their
// organisations and their teams ("org/slug").
type Membership struct {
	Login string
	Orgs  []string
	Teams []string
}

// RoleOf returns the highest role that rules give m, or None.
func RoleOf(rules []RoleRule, m Membership) Role {
	best := None
	for _, r := range rules {
		if r.Role <= best {
			continue
		}
		if matches(r, m) {
			best = r.Role
		}
	}
	return best
}

func matches(r RoleRule, m Membership) bool {
	switch {
	case r.User != "":
		return strings.EqualFold(r.User, m.Login)
	case r.Team != "":
		for _, t := range m.Teams {
			org, slug, _ := strings.Cut(t, "/")
			if strings.EqualFold(org, r.Org) && strings.EqualFold(slug, r.Team) {
				return true
			}
		}
	default:
		for _, o := range m.Orgs {
			if strings.EqualFold(o, r.Org) {
				return true
			}
		}
	}
	return false
}
