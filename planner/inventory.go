package planner

import "io/fs"

// InventoryServer is one server of fleet.yml, as a form offers it.
type InventoryServer struct {
	Name string
	Tags []string
}

// Inventory reads the servers of fleet.yml in fsys, sorted by name, and
// the templates under templates/ (names without .yml.tmpl), sorted. A
// missing fleet.yml has no servers; a broken one returns its mistakes as
// ConfigErrors (the servers read so far are returned too).
func Inventory(fsys fs.FS) (servers []InventoryServer, templates []string, err error) {
	r := &report{}
	f := loadFleet(fsys, r)
	for _, n := range f.names {
		servers = append(servers, InventoryServer{Name: n, Tags: append([]string(nil), f.servers[n].tags...)})
	}
	if names, gerr := fs.Glob(fsys, "templates/*"+templateExt); gerr == nil {
		for _, n := range names {
			templates = append(templates, n[len("templates/"):len(n)-len(templateExt)])
		}
	}
	if errs, _ := r.sorted(); len(errs) > 0 {
		return servers, templates, errs
	}
	return servers, templates, nil
}

const templateExt = ".yml.tmpl"
