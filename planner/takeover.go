package planner

import (
	"fmt"
	"sort"
	"strings"
)

// takeoverNotes says, per host where this plan puts bosun-proxy for the
// first time (a proxied create on a host with no applied proxied target),
// what bosun does if Kamal serves there. The planner reaches no server, so
// it cannot know whether Kamal runs there; the executor finds out by names
// and labels before it changes anything (executor/kamal.go) and refuses an
// unclear case.
func takeoverNotes(pl *Plan, applied []Applied) []string {
	proxied := map[string]bool{}
	for _, a := range applied {
		if a.Spec.Proxy != nil {
			proxied[a.Host] = true
		}
	}
	created := map[string][]string{} // host -> targets created there
	first := map[string]bool{}
	for _, ch := range pl.Changes {
		if ch.Action != ActionCreate || ch.Desired == nil {
			continue
		}
		created[ch.Host] = append(created[ch.Host], ch.Service+"/"+ch.Role)
		if ch.Desired.Proxy != nil && !proxied[ch.Host] {
			first[ch.Host] = true
		}
	}
	var out []string
	for h := range first {
		ts := created[h]
		sort.Strings(ts)
		out = append(out, fmt.Sprintf("%s: bosun-proxy comes to this server. If kamal-proxy serves there, bosun takes over: %s started and health-checked first, "+
			"then kamal-proxy stopped and its ports given to bosun-proxy; Kamal's containers of these targets stopped and kept "+
			"(bosun apply --remove-kamal removes them); accessory data stays where Kamal put it (docs/migrating-from-kamal.md)", h, strings.Join(ts, ", ")))
	}
	sort.Strings(out)
	return out
}
