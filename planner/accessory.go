package planner

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// accessoryRole is the role name of an accessory's single role.
const accessoryRole = AccessoryRole

// AccessoryRole is the role of a Kamal accessory's containers. The executor
// gives them the accessory's service name as a network alias, as Kamal's
// container name is (<service>-<accessory>).
const AccessoryRole = "accessory"

var accessoryKeys = []string{
	"service", "image", "registry", "host", "hosts", "role", "roles", "tag", "tags",
	"cmd", "port", "labels", "options", "env", "volumes", "directories", "files", "proxy",
}

var accessoryIgnored = map[string]string{"network": "bosun runs every container on its own network \"bosun\""}

// parseAccessories turns Kamal's accessories into services of their own,
// named service (default "<service>-<name>") with one role, "accessory".
// They inherit the main service's ssh settings and timeouts.
func parseAccessories(main *svcDef) []*svcDef {
	d := main.d
	ps, ok := d.pairs(main.accessories, "accessories")
	if !ok {
		return nil
	}
	var out []*svcDef
	for _, p := range ps {
		name := p.key.Value
		what := "accessories." + name
		if msg := checkName(name); msg != "" {
			d.errf(p.key, "accessory name: %s", msg)
			continue
		}
		fs, ok := d.fields(p.val, what, keys{known: accessoryKeys, ignored: accessoryIgnored})
		if !ok {
			continue
		}
		a := &svcDef{d: d, name: main.name + "-" + name, nameNode: p.key, primaryRole: accessoryRole,
			retain: main.retain, readiness: main.readiness, deploy: main.deploy, drain: main.drain,
			stop: main.stop, ssh: main.ssh, sshNode: main.sshNode, accessory: true, template: main.template,
			allowDangerous: main.allowDangerous, allowEmptyRoles: main.allowEmptyRoles,
			labels: map[string]string{}}
		if main.name == "" {
			a.name = ""
		}
		if v, ok := fs["service"]; ok {
			if s, ok := d.str(v, what+".service"); ok {
				if msg := checkName(s); msg != "" {
					d.errf(d.deref(v), "%s.service: %s", what, msg)
				} else {
					a.name, a.nameNode = s, d.deref(v)
				}
			}
		}
		if v, ok := fs["image"]; ok {
			a.imageNode = d.deref(v)
			if s, ok := d.str(v, what+".image"); ok {
				if msg := checkImage(s); msg != "" {
					d.errf(a.imageNode, "%s.image: %s", what, msg)
				} else {
					a.image, a.imageVersioned = s, imageHasVersion(s)
				}
			}
		} else {
			d.errf(p.key, "%s has no image: add image: (e.g. postgres:16-alpine)", what)
		}
		if v, ok := fs["registry"]; ok {
			a.registry = d.registry(v, what+".registry")
		}
		r := &roleDef{name: accessoryRole, node: p.key}
		hostKeys := 0
		for _, k := range []string{"host", "hosts", "role", "roles", "tag", "tags"} {
			v, ok := fs[k]
			if !ok {
				continue
			}
			hostKeys++
			items, nodes, _ := d.strList(v, what+"."+k, true)
			for i, it := range items {
				switch k {
				case "host", "hosts":
					r.hosts = append(r.hosts, hostRef{value: it, node: nodes[i]})
				case "tag", "tags":
					r.hosts = append(r.hosts, hostRef{value: "tag:" + it, node: nodes[i]})
				default:
					found := false
					for _, mr := range main.roles {
						if mr.name == it {
							r.hosts = append(r.hosts, mr.hosts...)
							found = true
						}
					}
					if !found {
						d.errf(nodes[i], "%s.%s: the service has no role %q", what, k, it)
					}
				}
			}
		}
		if hostKeys != 1 {
			d.errf(p.key, "%s: set exactly one of host, hosts, role, roles, tag or tags", what)
		}
		if v, ok := fs["cmd"]; ok {
			r.cmd = d.cmd(v, what+".cmd")
		}
		if v, ok := fs["env"]; ok {
			a.env = d.env(v, what+".env", false)
		}
		if v, ok := fs["options"]; ok {
			r.options, r.health = d.options(v, what+".options")
		}
		if v, ok := fs["port"]; ok {
			if s, ok := d.str(v, what+".port"); ok {
				if !strings.Contains(s, ":") {
					s = s + ":" + s
				}
				if msg := checkPublish(s); msg != "" {
					d.errf(d.deref(v), "%s.port: %s", what, msg)
				} else {
					r.options.Publish = append(r.options.Publish, s)
					if r.health.keys == nil {
						r.health.keys = map[string]*yaml.Node{}
					}
					if r.health.keys["publish"] == nil {
						r.health.keys["publish"] = v // where a dangerous port is reported
					}
				}
			}
		}
		if v, ok := fs["labels"]; ok {
			a.labels = d.labels(v, what+".labels")
		}
		if v, ok := fs["volumes"]; ok {
			a.volumes, a.volNodes = d.volumes(v, what+".volumes")
		}
		if v, ok := fs["directories"]; ok {
			vols, nodes := d.volumes(v, what+".directories")
			for i, vol := range vols {
				// Kamal keeps a relative directory in a folder named after
				// the accessory in the SSH user's home: ~/<service>-<name>/DIR.
				if rel, ok := strings.CutPrefix(vol.Source, HomePrefix); ok {
					vol.Source = rel
				}
				if !strings.HasPrefix(vol.Source, "/") {
					src, msg := homeRelative(what+".directories: directory", a.name+"/"+vol.Source)
					if msg != "" {
						d.errf(nodes[i], "%s", msg)
						continue
					}
					vol.Source = src
				}
				a.volumes, a.volNodes = append(a.volumes, vol), append(a.volNodes, nodes[i])
			}
		}
		if v, ok := fs["files"]; ok {
			d.errf(d.deref(v), "%s.files: bosun does not upload files: build them into the image, or mount a host folder with volumes", what)
		}
		if v, ok := fs["proxy"]; ok {
			on := true
			r.proxyOn = &on
			r.proxy = d.proxy(v, what+".proxy")
		} else {
			off := false
			r.proxyOn = &off
		}
		a.roles = []*roleDef{r}
		out = append(out, a)
	}
	return out
}
