package dashboard

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/state"
)

func TestAPI_holdRelease(t *testing.T) {
	for name, dsn := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, dsn(t), nil)
			ctx := t.Context()
			if err := b.st.PutApplied(ctx, state.Applied{Repo: "fleet", Service: "web", Role: "web", Host: "server-01", Version: "v1abc", Commit: "c1", Spec: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
			viewer, err := CreateToken(ctx, b.st, "look", Viewer, "test")
			if err != nil {
				t.Fatal(err)
			}
			deployer, err := CreateToken(ctx, b.st, "ci", Deployer, "test")
			if err != nil {
				t.Fatal(err)
			}
			c := browser(t, false)
			hold := b.url + "/api/v1/repos/fleet/services/web/hold"
			release := b.url + "/api/v1/repos/fleet/services/web/release"
			if code, _, _ := do(t, c, "POST", hold, viewer, nil); code != http.StatusForbidden {
				t.Errorf("a viewer's hold: %d, want 403", code)
			}
			if hs, _ := b.st.ListHolds(ctx, "fleet"); len(hs) != 0 {
				t.Fatalf("a refused hold was stored: %+v", hs)
			}
			if code, _, body := do(t, c, "POST", hold, deployer, map[string]string{"reason": "incident 42"}); code != http.StatusOK || !strings.Contains(body, "held at v1abc") {
				t.Errorf("hold: %d %s", code, body)
			}
			hs, err := b.st.ListHolds(ctx, "fleet")
			if err != nil || len(hs) != 1 || hs[0].Service != "web" || hs[0].Version != "v1abc" || hs[0].Reason != "held by token:ci from the dashboard: incident 42" {
				t.Fatalf("holds = %+v %v", hs, err)
			}
			if code, _, _ := do(t, c, "POST", b.url+"/api/v1/repos/fleet/services/db/hold", deployer, nil); code != http.StatusNotFound {
				t.Errorf("hold of a service never applied: %d, want 404", code)
			}
			if code, _, _ := do(t, c, "POST", release, viewer, nil); code != http.StatusForbidden {
				t.Errorf("a viewer's release: %d, want 403", code)
			}
			if code, _, body := do(t, c, "POST", release, deployer, nil); code != http.StatusOK || !strings.Contains(body, "released") {
				t.Errorf("release: %d %s", code, body)
			}
			if hs, _ := b.st.ListHolds(ctx, "fleet"); len(hs) != 0 {
				t.Errorf("holds after release = %+v", hs)
			}
			if code, _, _ := do(t, c, "POST", release, deployer, nil); code != http.StatusNotFound {
				t.Errorf("release of a service not held: %d, want 404", code)
			}
		})
	}
}
