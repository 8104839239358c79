package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bosunhq/bosun/internal/commitsha"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// The pages of issue 13 that read the store: the fleet (what runs where),
// one deployment live, and the history.

// fleetCell is one service on one server in the fleet matrix.
type fleetCell struct {
	Version, Image, Commit string
	At                     time.Time
	// Health is "running", "unhealthy" (its last rollout failed, or the
	// live check found it unhealthy or not running) or "missing" (not
	// applied there, or the live check found no container of it).
	Health string
	// Rollout is the last rollout's result ("ok", "failed"), Live what the
	// live check found ("" before one read the server).
	Rollout, Live string
	Held          bool
}

// fleetRow is one server of the fleet matrix.
type fleetRow struct {
	Server      string
	Tags        []string    // fleet.yml's
	Unreachable string      // why the live check could not read it
	Cells       []fleetCell // one per column
}

// fleetColumn is one service of the fleet matrix.
type fleetColumn struct{ Repo, Service string }

// fleetData is the fleet page's data.
type fleetData struct {
	Columns                    []fleetColumn
	Rows                       []fleetRow
	Repos                      []string
	Tags                       []string // every server tag, for the filter
	Repo, Service, Server, Tag string
	Live                       bool      // a live check is configured
	LiveAt                     time.Time // when the last live check finished; zero: none yet
	Now                        time.Time
}

// fleet gathers the fleet matrix from the store: per repo what is applied
// (ListFleet: the newest target per service and host, without specs), the
// holds, and the last deployment of each service (a failed or rolled back
// one marks its cells unhealthy); and, with a live check, what the last
// check found on the servers.
func (s *Server) fleet(r *http.Request) (fleetData, error) {
	ctx := r.Context()
	q := r.URL.Query()
	d := fleetData{Repo: q.Get("repo"), Service: q.Get("service"), Server: q.Get("server"), Tag: q.Get("tag"), Now: time.Now()}
	if s.opts.Daemon != nil {
		d.Repos = s.opts.Daemon.Repos()
	}
	// The servers' tags and, for the live check, how to reach them.
	tags := map[string][]string{}
	var hosts []planner.Host
	if sl, ok := s.opts.Daemon.(ServerLister); ok {
		seen := map[string]bool{}
		allTags := map[string]bool{}
		for _, repo := range d.Repos {
			hs, ts, ok := sl.Servers(repo)
			if !ok {
				continue
			}
			for _, h := range hs {
				if !seen[h.Name] {
					seen[h.Name] = true
					hosts = append(hosts, h)
				}
			}
			for h, t := range ts {
				tags[h] = t
				for _, x := range t {
					allTags[x] = true
				}
			}
		}
		for t := range allTags {
			d.Tags = append(d.Tags, t)
		}
		sort.Strings(d.Tags)
	}
	var live liveView
	if s.live != nil {
		d.Live = true
		live = s.live.current(hosts, func(err error) { s.log.WarnContext(ctx, "fleet live check: some servers not read", "err", err) })
		d.LiveAt = live.At
	}
	type key struct{ repo, service, host string }
	cells := make(map[key]fleetCell, 1024)
	servers := map[string]bool{}
	cols := map[fleetColumn]bool{}
	for _, repo := range d.Repos {
		if d.Repo != "" && repo != d.Repo {
			continue
		}
		applied, err := s.opts.Store.ListFleet(ctx, repo)
		if err != nil {
			return d, fmt.Errorf("list what is applied for %s: %w", repo, err)
		}
		holds, err := s.opts.Store.ListHolds(ctx, repo)
		if err != nil {
			return d, fmt.Errorf("list the holds of %s: %w", repo, err)
		}
		held := map[string]bool{}
		for _, h := range holds {
			held[h.Service] = true
		}
		failed := map[string]bool{}
		for _, a := range applied {
			if d.Service != "" && a.Service != d.Service || d.Server != "" && a.Host != d.Server || d.Tag != "" && !slices.Contains(tags[a.Host], d.Tag) {
				continue
			}
			col := fleetColumn{repo, a.Service}
			if !cols[col] {
				cols[col] = true
				last, err := s.opts.Store.ListDeployments(ctx, state.DeploymentFilter{Repo: repo, Service: a.Service, Limit: 1})
				if err != nil {
					return d, fmt.Errorf("last deployment of %s/%s: %w", repo, a.Service, err)
				}
				failed[a.Service] = len(last) == 1 && (last[0].Status == state.StatusFailed || last[0].Status == state.StatusRolledBack)
			}
			servers[a.Host] = true
			c := fleetCell{Version: a.Version, Image: a.Image, Commit: a.Commit, At: a.AppliedAt, Health: "running", Rollout: "ok", Held: held[a.Service]}
			if failed[a.Service] {
				c.Health, c.Rollout = "unhealthy", "failed"
			}
			if live.Checked[a.Host] {
				switch run, ok := live.Runs[liveKey{a.Service, a.Host}]; {
				case !ok:
					c.Health, c.Live = "missing", "no container running"
				case run.State != "running":
					c.Health, c.Live = "unhealthy", run.State
				case run.Health == "unhealthy":
					c.Health, c.Live = "unhealthy", "running, unhealthy"
				case run.Health != "":
					c.Live = "running, " + run.Health
				default:
					c.Live = "running"
				}
			}
			cells[key{repo, a.Service, a.Host}] = c
		}
	}
	for c := range cols {
		d.Columns = append(d.Columns, c)
	}
	sort.Slice(d.Columns, func(i, j int) bool {
		a, b := d.Columns[i], d.Columns[j]
		return a.Repo < b.Repo || a.Repo == b.Repo && a.Service < b.Service
	})
	names := make([]string, 0, len(servers))
	for h := range servers {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		row := fleetRow{Server: h, Tags: tags[h], Unreachable: live.Unreachable[h], Cells: make([]fleetCell, len(d.Columns))}
		for i, c := range d.Columns {
			cell, ok := cells[key{c.Repo, c.Service, h}]
			if !ok {
				cell = fleetCell{Health: "missing"}
			}
			row.Cells[i] = cell
		}
		d.Rows = append(d.Rows, row)
	}
	return d, nil
}

// Matrix renders the fleet matrix's rows. It is Go, not the page's
// template: 200 servers × 50 services are 10,000 cells, and a template
// spends most of the 100 ms the page may take on its reflection calls.
// Every value is escaped here.
func (d fleetData) Matrix() template.HTML {
	var b strings.Builder
	b.Grow(len(d.Rows) * len(d.Columns) * 300)
	esc := html.EscapeString
	for _, row := range d.Rows {
		b.WriteString(`<tr><th><a href="/servers/`)
		b.WriteString(esc(url.PathEscape(row.Server)))
		b.WriteString(`">`)
		b.WriteString(esc(row.Server))
		b.WriteString("</a>")
		if len(row.Tags) > 0 {
			b.WriteString(`<div class="muted small">`)
			b.WriteString(esc(strings.Join(row.Tags, ", ")))
			b.WriteString("</div>")
		}
		if row.Unreachable != "" {
			b.WriteString(`<div class="badge h-unhealthy" title="`)
			b.WriteString(esc(row.Unreachable))
			b.WriteString(`">unreachable</div>`)
		}
		b.WriteString("</th>")
		for _, c := range row.Cells {
			h := esc(c.Health)
			b.WriteString(`<td class="cell h-`)
			b.WriteString(h)
			b.WriteString(`">`)
			if c.Version == "" {
				b.WriteString(`<span class="muted">missing</span></td>`)
				continue
			}
			b.WriteString(`<span class="badge h-`)
			b.WriteString(h)
			b.WriteString(`" title="last rollout: `)
			b.WriteString(esc(c.Rollout))
			if c.Live != "" {
				b.WriteString("; live check: ")
				b.WriteString(esc(c.Live))
			}
			b.WriteString(`">`)
			b.WriteString(h)
			b.WriteString(`</span>`)
			if c.Held {
				b.WriteString(` <span class="badge held" title="held: bosun does not deploy this service">held</span>`)
			}
			b.WriteString("\n" + `<div class="mono">`)
			b.WriteString(esc(shortVersion(c.Version)))
			b.WriteString(" · ")
			b.WriteString(esc(imageTag(c.Image)))
			b.WriteString(`</div><div class="mono muted small">`)
			b.WriteString(esc(commitsha.Short(c.Commit)))
			b.WriteString(` · <span title="`)
			b.WriteString(absTime(c.At))
			b.WriteString(`">`)
			b.WriteString(age(d.Now, c.At))
			b.WriteString("</span></div></td>")
		}
		b.WriteString("</tr>\n")
	}
	return template.HTML(b.String())
}

func (s *Server) fleetPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.fleet(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.page(w, r, http.StatusOK, "fleet", map[string]any{"Fleet": d})
}

// historyStatuses are the statuses History filters by.
var historyStatuses = []state.Status{state.StatusDeployed, state.StatusFailed, state.StatusRolledBack, state.StatusDeploying, state.StatusPending}

// historyPage is GET /history (and /servers/{server}, the per-server view):
// every deployment, newest first, filtered by repo, service, server and
// status.
func (s *Server) historyPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := state.DeploymentFilter{Repo: q.Get("repo"), Service: q.Get("service"), Host: q.Get("server"), Status: state.Status(q.Get("status")), Limit: DefaultLimit}
	if sv := r.PathValue("server"); sv != "" {
		f.Host = sv
	}
	if f.Status != "" && !f.Status.Valid() {
		s.page(w, r, http.StatusBadRequest, "error", map[string]any{"Message": "status: " + string(f.Status) + " is not a deployment status"})
		return
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			s.page(w, r, http.StatusBadRequest, "error", map[string]any{"Message": "before: a deployment id"})
			return
		}
		f.BeforeID = n
	}
	ds, err := s.opts.Store.ListDeployments(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var repos []string
	if s.opts.Daemon != nil {
		repos = s.opts.Daemon.Repos()
	}
	next := ""
	if len(ds) == f.Limit {
		v := url.Values{}
		for k, x := range map[string]string{"repo": f.Repo, "service": f.Service, "server": f.Host, "status": string(f.Status)} {
			if x != "" {
				v.Set(k, x)
			}
		}
		v.Set("before", strconv.FormatInt(ds[len(ds)-1].ID, 10))
		next = "/history?" + v.Encode()
	}
	var actions []state.Action
	if f.Host == "" { // actions name no server
		af, _ := actionFilter(r)
		af.Limit = DefaultLimit
		if actions, err = s.opts.Store.ListActions(r.Context(), af); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.page(w, r, http.StatusOK, "history", map[string]any{"Deployments": ds, "Filter": f, "Repos": repos, "Statuses": historyStatuses,
		"PerServer": r.PathValue("server"), "Next": next, "Now": time.Now(), "Actions": actions, "Actor": q.Get("actor")})
}

// deploymentPage is GET /deployments/{id}: one rollout, its steps per
// host (streamed by /deployments/{id}/stream while it runs).
func (s *Server) deploymentPage(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		s.page(w, r, http.StatusBadRequest, "error", map[string]any{"Message": "not a deployment id: " + r.PathValue("id")})
		return
	}
	d, err := s.opts.Store.GetDeployment(r.Context(), id)
	if err != nil {
		if err == state.ErrNotFound || strings.Contains(err.Error(), state.ErrNotFound.Error()) {
			s.page(w, r, http.StatusNotFound, "error", map[string]any{"Message": "no deployment " + r.PathValue("id")})
			return
		}
		s.fail(w, r, err)
		return
	}
	evs, err := s.opts.Store.ListEvents(r.Context(), d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := map[string]any{"D": d, "Events": evs, "Live": d.FinishedAt == nil, "Now": time.Now(), "Flash": r.URL.Query().Get("flash")}
	if e, ok := state.CancelAsked(evs); ok {
		data["CancelBy"] = e.Actor
	}
	if who, _ := IdentityOf(r.Context()); who.MayDeploy() {
		data["CanCancel"] = true
	}
	s.page(w, r, http.StatusOK, "deployment", data)
}

// streamPoll is how often the stream reads the store for new events: well
// under the 100 ms the issue allows between a store write and the browser.
// A write by this process's store wakes the stream at once (EventsChanged);
// the poll finds other processes' writes.
const streamPoll = 40 * time.Millisecond

// streamWriteWait bounds each write of a stream: a client that takes no
// bytes for that long (gone, or too slow) ends its stream and frees the
// handler's goroutine. streamPing is how often an idle stream sends a
// comment, so that a dead client is found by a write within
// streamPing + streamWriteWait. Both are variables for tests.
var (
	streamWriteWait = 15 * time.Second
	streamPing      = 15 * time.Second
)

// stream is GET /deployments/{id}/stream: Server-Sent Events, one "step"
// event (JSON, as the API's Event) per deployment event in store order,
// then "end" (the deployment's final status) when it has finished. A
// reconnecting EventSource sends Last-Event-ID, the count it has seen.
//
// A stream lives as long as its rollout, longer than the listener's
// WriteTimeout and ReadTimeout (made for ordinary requests): it clears the
// read deadline, which would cancel the request when it passed, and sets a
// write deadline of streamWriteWait before each write instead of the
// server's one for the whole response.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		http.Error(w, "not a deployment id", http.StatusBadRequest)
		return
	}
	sent := 0
	if v, err := strconv.Atoi(r.Header.Get("Last-Event-ID")); err == nil && v > 0 {
		sent = v
	}
	rc := http.NewResponseController(w)
	// Not supported (a test's recorder): the server's deadlines stay.
	_ = rc.SetReadDeadline(time.Time{})
	ctx := r.Context()
	var buf bytes.Buffer
	// flush writes buf to the client within streamWriteWait; false when
	// the client is gone or too slow (the stream ends).
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
		if buf.Len() > 0 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return false
			}
			buf.Reset()
		}
		if err := rc.Flush(); err != nil {
			s.log.DebugContext(ctx, "deployment stream client gone", "deployment", id, "err", err)
			return false
		}
		return true
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
	w.WriteHeader(http.StatusOK)
	if !flush() {
		return
	}
	t := time.NewTicker(streamPoll)
	defer t.Stop()
	lastWrite := time.Now()
	notifier, _ := s.opts.Store.(eventNotifier)
	for {
		// Asked before the read: a write after it closes this one.
		var changed <-chan struct{}
		if notifier != nil {
			changed = notifier.EventsChanged()
		}
		d, err := s.opts.Store.GetDeployment(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "deployment stream ended", "deployment", id, "err", err)
				fmt.Fprintf(&buf, "event: error\ndata: %q\n\n", "deployment not readable")
				flush()
			}
			return
		}
		evs, err := s.opts.Store.ListEvents(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "deployment stream ended", "deployment", id, "err", err)
			}
			return
		}
		for ; sent < len(evs); sent++ {
			e := evs[sent]
			b, _ := json.Marshal(Event{DeploymentID: e.DeploymentID, Host: e.Host, Step: e.Step, Status: e.Status, Message: e.Message, Actor: e.Actor, At: e.At})
			fmt.Fprintf(&buf, "id: %d\nevent: step\ndata: %s\n\n", sent+1, b)
		}
		if d.FinishedAt != nil {
			fmt.Fprintf(&buf, "event: end\ndata: %q\n\n", string(d.Status))
			flush()
			return
		}
		if buf.Len() == 0 && time.Since(lastWrite) >= streamPing {
			buf.WriteString(": ping\n\n")
		}
		if buf.Len() > 0 {
			if !flush() {
				return
			}
			lastWrite = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
	}
}

// eventNotifier is a store that says when it wrote an event in this
// process (the state package's stores do: EventsChanged).
type eventNotifier interface {
	EventsChanged() <-chan struct{}
}

// liveJS is the deployment page's script: it appends each streamed step
// to the table and reloads the page when the rollout ends.
const liveJS = `(function () {
  var t = document.getElementById("steps");
  if (!t || !t.dataset.stream) return;
  var es = new EventSource(t.dataset.stream);
  es.addEventListener("step", function (m) {
    var e = JSON.parse(m.data);
    var tr = document.createElement("tr");
    tr.className = "step st-" + e.status;
    [new Date(e.at).toLocaleTimeString([], {hour12: false}), e.host, e.step, e.status, e.message || "", e.actor || ""].forEach(function (v, i) {
      var td = document.createElement("td");
      if (i === 4 && e.status === "failed") { // the error and the container's last log lines
        var pre = document.createElement("pre"); pre.textContent = v; td.appendChild(pre);
      } else {
        td.textContent = v;
      }
      tr.appendChild(td);
    });
    var empty = document.getElementById("nosteps"); if (empty) empty.remove();
    t.tBodies[0].appendChild(tr);
  });
  es.addEventListener("end", function () { es.close(); setTimeout(function () { location.replace(location.pathname); }, 300); });
})();
`

// script is GET /static/live.js (a file, not inline: the pages' CSP
// allows only scripts from 'self').
func (s *Server) script(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Write([]byte(liveJS))
}

// templateFuncs are the helpers the pages use.
var templateFuncs = map[string]any{
	"image": state.ImageOf,
	// planHTML renders a plan comment's Markdown (markdown.go).
	"planHTML": planHTML,
	"isURL":    func(s string) bool { return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") },
	"planClass": func(state string) string { // a bosun/plan state, as a deployment status's badge colour
		switch state {
		case "success":
			return "deployed"
		case "failure", "error":
			return "failed"
		}
		return "pending"
	},
	"short":   commitsha.Short,
	"shortv":  shortVersion,
	"tag":     imageTag,
	"age":     age,
	"abstime": absTime,
	"took": func(start time.Time, end *time.Time) string {
		return end.Sub(start).Round(100 * time.Millisecond).String()
	},
	"serverOf": func(host string) string { // events name ROLE@HOST or HOST
		if i := strings.LastIndex(host, "@"); i >= 0 {
			return host[i+1:]
		}
		return host
	},
}

// shortVersion is a version's first 8 characters.
func shortVersion(v string) string {
	if len(v) > 8 {
		return v[:8]
	}
	return v
}

// imageTag is the tag (or digest) of an image reference.
func imageTag(image string) string {
	if i := strings.LastIndex(image, "@"); i >= 0 {
		return image[i+1:]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return "latest"
}

func absTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// age says how long ago t was, in one unit: "45s", "12m", "3h", "5d".
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case t.IsZero():
		return "—"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
