package dashboard

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/state"
)

// stores are the two stores the API and tokens are checked on.
var stores = map[string]func(t *testing.T) string{
	"sqlite":   sqliteDSN,
	"postgres": func(t *testing.T) string { return testbed.Postgres(t) },
}

func TestTokens(t *testing.T) {
	for name, dsn := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, dsn(t), nil)
			tok, err := CreateToken(t.Context(), b.st, "ci", Viewer, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := CreateToken(t.Context(), b.st, "ci", Admin, "alice"); err == nil {
				t.Errorf("a second token called ci was made")
			}
			if _, err := CreateToken(t.Context(), b.st, "Bad Name", Viewer, "alice"); err == nil {
				t.Errorf("a token called \"Bad Name\" was made")
			}
			// The store has the hash, never the token.
			ts, err := b.st.ListTokens(t.Context())
			if err != nil || len(ts) != 1 {
				t.Fatalf("ListTokens = %v %v", ts, err)
			}
			if !bytes.Equal(ts[0].Hash, HashToken(tok)) || bytes.Contains(ts[0].Hash, []byte(tok[len(tokenPrefix):])) || ts[0].Role != "viewer" || ts[0].CreatedBy != "alice" {
				t.Errorf("stored token = %+v", ts[0])
			}
			if len(tok) != len(tokenPrefix)+43 {
				t.Errorf("token %q: want bosun_ and 43 characters (32 random bytes)", tok)
			}
			c := browser(t, false)
			if code, _, body := do(t, c, "GET", b.url+"/api/v1/whoami", tok, nil); code != http.StatusOK || decode[Whoami](t, body) != (Whoami{Actor: "token:ci", Role: Viewer}) {
				t.Errorf("whoami with the token: %d %s", code, body)
			}
			if code, _, _ := do(t, c, "POST", b.url+"/api/v1/repos/fleet/sync", tok, nil); code != http.StatusForbidden {
				t.Errorf("a viewer token's POST: %d, want 403", code)
			}
			if err := b.st.RevokeToken(t.Context(), "ci"); err != nil {
				t.Fatal(err)
			}
			if code, _, _ := do(t, c, "GET", b.url+"/api/v1/whoami", tok, nil); code != http.StatusUnauthorized {
				t.Errorf("a revoked token: %d, want 401", code)
			}
		})
	}
}

func TestAPI_deployments(t *testing.T) {
	for name, dsn := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, dsn(t), nil)
			ctx := t.Context()
			tok, err := CreateToken(ctx, b.st, "ci", Viewer, "test")
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for i, d := range []struct {
				repo, service, host string
				status              state.Status
			}{
				{"fleet", "web", "web@server-01", state.StatusDeployed},
				{"fleet", "api", "web@server-02", state.StatusFailed},
				{"other", "web", "web@server-01", state.StatusDeployed},
				{"fleet", "web", "web@server-02", state.StatusRolledBack},
			} {
				id, err := b.st.CreateDeployment(ctx, state.Deployment{Repo: d.repo, Service: d.service, Commit: fmt.Sprintf("c%d", i), Trigger: "push"})
				if err != nil {
					t.Fatal(err)
				}
				for _, step := range []string{"pull", "start", "health"} {
					if err := b.st.AddEvent(ctx, state.Event{DeploymentID: id, Host: d.host, Step: step, Status: "ok", Actor: "github:alice"}); err != nil {
						t.Fatal(err)
					}
				}
				if err := b.st.FinishDeployment(ctx, id, d.status, ""); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			c := browser(t, false)
			list := func(query string) []int64 {
				t.Helper()
				code, _, body := do(t, c, "GET", b.url+"/api/v1/deployments"+query, tok, nil)
				if code != http.StatusOK {
					t.Fatalf("GET /api/v1/deployments%s: %d %s", query, code, body)
				}
				var got []int64
				for _, d := range decode[DeploymentList](t, body).Deployments {
					got = append(got, d.ID)
				}
				return got
			}
			for q, want := range map[string][]int64{
				"":                             {ids[3], ids[2], ids[1], ids[0]},
				"?repo=fleet":                  {ids[3], ids[1], ids[0]},
				"?repo=fleet&service=web":      {ids[3], ids[0]},
				"?server=server-01":            {ids[2], ids[0]},
				"?server=server-02&repo=fleet": {ids[3], ids[1]},
				"?status=failed":               {ids[1]},
				"?status=rolled_back":          {ids[3]},
				"?limit=2":                     {ids[3], ids[2]},
				fmt.Sprintf("?limit=2&before=%d", ids[2]): {ids[1], ids[0]},
			} {
				if got := list(q); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("GET /api/v1/deployments%s = %v, want %v", q, got, want)
				}
			}
			_, _, body := do(t, c, "GET", b.url+"/api/v1/deployments?limit=2", tok, nil)
			if l := decode[DeploymentList](t, body); l.NextBefore != ids[2] || l.Deployments[0].Repo != "fleet" || l.Deployments[0].Status != "rolled_back" || l.Deployments[0].FinishedAt == nil {
				t.Errorf("page = %+v, want next_before %d and the fields", l, ids[2])
			}
			for _, q := range []string{"?status=exploded", "?limit=0", "?limit=9999", "?before=x"} {
				if code, _, _ := do(t, c, "GET", b.url+"/api/v1/deployments"+q, tok, nil); code != http.StatusBadRequest {
					t.Errorf("GET /api/v1/deployments%s: %d, want 400", q, code)
				}
			}

			code, _, body := do(t, c, "GET", fmt.Sprintf("%s/api/v1/deployments/%d/events", b.url, ids[1]), tok, nil)
			evs := decode[struct{ Events []Event }](t, body).Events
			if code != http.StatusOK || len(evs) != 3 || evs[0].Step != "pull" || evs[2].Step != "health" || evs[0].Actor != "github:alice" || evs[0].Host != "web@server-02" || evs[0].DeploymentID != ids[1] {
				t.Errorf("events of %d: %d %+v", ids[1], code, evs)
			}
			if code, _, body := do(t, c, "GET", fmt.Sprintf("%s/api/v1/deployments/%d", b.url, ids[0]), tok, nil); code != http.StatusOK || decode[Deployment](t, body).Commit != "c0" {
				t.Errorf("deployment %d: %d %s", ids[0], code, body)
			}
			for p, want := range map[string]int{"/api/v1/deployments/999999": 404, "/api/v1/deployments/999999/events": 404, "/api/v1/deployments/x": 400} {
				if code, _, _ := do(t, c, "GET", b.url+p, tok, nil); code != want {
					t.Errorf("GET %s: %d, want %d", p, code, want)
				}
			}
		})
	}
}
