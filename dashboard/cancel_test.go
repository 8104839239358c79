package dashboard

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/state"
)

// A deployer's cancel adds the cancel request, with its actor, to a running
// deployment's events (which the daemon running it watches) and records
// the action; a viewer is refused, by token and by session; a finished or
// unknown deployment has nothing to cancel.
func TestCancel(t *testing.T) {
	for name, dsn := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, dsn(t), nil)
			ctx := t.Context()
			running, err := b.st.CreateDeployment(ctx, state.Deployment{Repo: "fleet", Service: "web", Commit: "c1", Status: state.StatusDeploying, Trigger: "push", StartedAt: time.Now().UTC()})
			if err != nil {
				t.Fatal(err)
			}
			done, err := b.st.CreateDeployment(ctx, state.Deployment{Repo: "fleet", Service: "web", Commit: "c0", Status: state.StatusDeploying, Trigger: "push", StartedAt: time.Now().UTC()})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.st.FinishDeployment(ctx, done, state.StatusDeployed, ""); err != nil {
				t.Fatal(err)
			}
			viewer, _ := CreateToken(ctx, b.st, "look", Viewer, "test")
			deployer, _ := CreateToken(ctx, b.st, "ci", Deployer, "test")
			api := func(id int64) string { return fmt.Sprintf("%s/api/v1/deployments/%d/cancel", b.url, id) }
			asked := func() []state.Event {
				evs, err := b.st.ListEvents(ctx, running)
				if err != nil {
					t.Fatal(err)
				}
				var out []state.Event
				for _, e := range evs {
					if e.Step == state.StepCancel {
						out = append(out, e)
					}
				}
				return out
			}
			c := browser(t, false)
			if code, _, _ := do(t, c, "POST", api(running), viewer, nil); code != http.StatusForbidden {
				t.Errorf("a viewer token's cancel: %d, want 403", code)
			}
			vc, vcsrf := b.login(t, bob)
			vc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			page := fmt.Sprintf("%s/deployments/%d", b.url, running)
			if code, _, _ := do(t, vc, "POST", page+"/cancel", "", map[string]string{"csrf": vcsrf}); code != http.StatusForbidden {
				t.Errorf("a viewer's cancel form: %d, want 403", code)
			}
			if code, _, body := do(t, vc, "GET", page, "", nil); code != http.StatusOK || strings.Contains(body, `id="cancel"`) {
				t.Errorf("the viewer's page: %d, has a cancel button: %v", code, strings.Contains(body, `id="cancel"`))
			}
			if n := len(asked()); n != 0 {
				t.Fatalf("refused cancels were stored: %d", n)
			}

			dc, dcsrf := b.login(t, alice)
			dc.CheckRedirect = vc.CheckRedirect
			if _, _, body := do(t, dc, "GET", page, "", nil); !strings.Contains(body, `id="cancel"`) {
				t.Errorf("the deployer's page of a running deployment has no cancel button")
			}
			if code, _, _ := do(t, dc, "POST", page+"/cancel", "", nil); code != http.StatusForbidden {
				t.Errorf("a cancel form without the CSRF token: %d, want 403", code)
			}
			code, h, _ := do(t, dc, "POST", page+"/cancel", "", map[string]string{"csrf": dcsrf})
			if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), fmt.Sprintf("/deployments/%d?", running)) {
				t.Errorf("cancel form: %d to %q, want 303 back to the page", code, h.Get("Location"))
			}
			evs := asked()
			if len(evs) != 1 || evs[0].Status != state.CancelRequested || evs[0].Actor != "github:alice" {
				t.Fatalf("cancel events = %+v, want one request by github:alice", evs)
			}
			if _, _, body := do(t, dc, "GET", page, "", nil); strings.Contains(body, `id="cancel"`) || !strings.Contains(body, "Cancel asked by <strong>github:alice</strong>") {
				t.Errorf("after the cancel the page still offers it, or does not say who asked")
			}
			// Asked again (by a script): one request stands.
			if code, _, body := do(t, c, "POST", api(running), deployer, nil); code != http.StatusAccepted || !strings.Contains(body, "github:alice asked") {
				t.Errorf("a second cancel: %d %s, want 202 naming the first", code, body)
			}
			if n := len(asked()); n != 1 {
				t.Errorf("cancel events after a second ask: %d, want 1", n)
			}
			acts, err := b.st.ListActions(ctx, state.ActionFilter{Action: ActionCancel})
			if err != nil || len(acts) != 1 || acts[0].Actor != "github:alice" || acts[0].DeploymentID != running || acts[0].Service != "web" {
				t.Errorf("cancel actions = %+v %v, want one by github:alice on deployment %d", acts, err, running)
			}

			if code, _, body := do(t, c, "POST", api(done), deployer, nil); code != http.StatusConflict || !strings.Contains(body, "has finished") {
				t.Errorf("cancel of a finished deployment: %d %s, want 409", code, body)
			}
			if code, _, _ := do(t, c, "POST", api(running+100), deployer, nil); code != http.StatusNotFound {
				t.Errorf("cancel of an unknown deployment: %d, want 404", code)
			}
			if code, _, _ := do(t, c, "POST", b.url+"/api/v1/deployments/x/cancel", deployer, nil); code != http.StatusBadRequest {
				t.Errorf("cancel of deployment x: %d, want 400", code)
			}
		})
	}
}
