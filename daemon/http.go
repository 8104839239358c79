package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// routes is the daemon's HTTP surface: the webhook intake, two probes and,
// when it has no listener of its own, the dashboard.
func (d *Daemon) routes(hooks http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/hooks/github", d.deps.Metrics.Webhooks(hooks))
	if d.deps.Dashboard != nil && d.deps.DashboardListener == nil {
		mux.Handle("/", d.deps.Dashboard)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	return mux
}

// readyz answers 200 when the store answers and every repository has been
// cloned once; otherwise 503 with the reasons.
func (d *Daemon) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var problems []string
	if err := d.pingStore(ctx); err != nil {
		problems = append(problems, "state store: "+err.Error())
	}
	for _, name := range d.repoNames() {
		if !d.repo(name).synced.Load() {
			problems = append(problems, "repository "+name+" not cloned yet")
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(map[string]any{"ready": len(problems) == 0, "problems": problems})
}
