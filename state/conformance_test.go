package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testutil"
	"github.com/bosunhq/bosun/migrations"
)

// testStore is the behaviour every Store must have. It runs unchanged on
// SQLite and PostgreSQL. newDSN returns the DSN of a fresh, empty database
// for one test; the suite opens it (sometimes twice, like two processes, and
// again after closing, to check persistence).
func testStore(t *testing.T, newDSN func(t *testing.T) string) {
	open := func(t *testing.T, dsn string) Store {
		t.Helper()
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("open %s: %v", Redact(dsn), err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	fresh := func(t *testing.T) Store { return open(t, newDSN(t)) }

	t.Run("Applied", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
		for _, a := range []Applied{
			{Repo: "r", Service: "web", Role: "web", Host: "web-2", Version: "v1", Commit: "c1", Spec: []byte(`{"image":"a"}`), AppliedAt: at},
			{Repo: "r", Service: "api", Role: "web", Host: "web-1", Version: "v9", Commit: "c1", Spec: []byte(`{}`), AppliedAt: at},
			{Repo: "r", Service: "web", Role: "web", Host: "web-1", Version: "v1", Commit: "c1", Spec: []byte(`{"image":"a"}`), AppliedAt: at},
			{Repo: "other", Service: "web", Role: "web", Host: "web-1", Version: "v7", Commit: "c0", Spec: []byte(`{}`)},
		} {
			if err := s.PutApplied(ctx, a); err != nil {
				t.Fatalf("PutApplied(%+v): %v", a, err)
			}
		}
		got := mustApplied(t, s, "r")
		if want := []string{"api/web@web-1:v9", "web/web@web-1:v1", "web/web@web-2:v1"}; !equalStrings(targets(got), want) {
			t.Fatalf("ListApplied = %v, want %v (sorted by service, role, host)", targets(got), want)
		}
		if a := got[1]; a.Repo != "r" || a.Commit != "c1" || string(a.Spec) != `{"image":"a"}` || !a.AppliedAt.Equal(at.Truncate(time.Microsecond)) || a.AppliedAt.Location() != time.UTC {
			t.Errorf("round trip: got %+v; want commit c1, the spec, applied at %v in UTC", a, at.Truncate(time.Microsecond))
		}

		// Upsert replaces the target's row.
		before := time.Now().Truncate(time.Microsecond)
		if err := s.PutApplied(ctx, Applied{Repo: "r", Service: "web", Role: "web", Host: "web-1", Version: "v2", Commit: "c2", Spec: []byte(`{"image":"b"}`)}); err != nil {
			t.Fatal(err)
		}
		got = mustApplied(t, s, "r")
		if want := []string{"api/web@web-1:v9", "web/web@web-1:v2", "web/web@web-2:v1"}; !equalStrings(targets(got), want) {
			t.Fatalf("after upsert ListApplied = %v, want %v", targets(got), want)
		}
		if a := got[1]; a.Commit != "c2" || string(a.Spec) != `{"image":"b"}` || a.AppliedAt.Before(before) || a.AppliedAt.After(time.Now()) {
			t.Errorf("upserted row = %+v; want commit c2, new spec, applied now", a)
		}

		if err := s.DeleteApplied(ctx, "r", "web", "web", "web-2"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteApplied(ctx, "r", "web", "web", "web-2"); err != nil {
			t.Errorf("deleting a target that is gone: %v; want nil", err)
		}
		if want := []string{"api/web@web-1:v9", "web/web@web-1:v2"}; !equalStrings(targets(mustApplied(t, s, "r")), want) {
			t.Errorf("after delete ListApplied = %v, want %v", targets(mustApplied(t, s, "r")), want)
		}
		if got := mustApplied(t, s, "other"); len(got) != 1 || got[0].Version != "v7" {
			t.Errorf("other repo's applied = %v, want its one target untouched", targets(got))
		}
		if got := mustApplied(t, s, "nope"); len(got) != 0 {
			t.Errorf("unknown repo: %v, want none", got)
		}
		if err := s.PutApplied(ctx, Applied{Repo: "r", Service: "web", Role: "web", Version: "v1"}); err == nil {
			t.Errorf("PutApplied without a host succeeded")
		}
	})

	t.Run("Fleet", func(t *testing.T) {
		t.Parallel()
		dsn := newDSN(t)
		s, ctx := open(t, dsn), t.Context()
		t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		for _, a := range []Applied{
			{Repo: "r", Service: "web", Role: "web", Host: "web-1", Version: "v1", Commit: "c1", Spec: []byte(`{"image":"ghcr.io/a/web:1"}`), AppliedAt: t0},
			// A later role of web on web-1 is what the fleet shows.
			{Repo: "r", Service: "web", Role: "worker", Host: "web-1", Version: "v2", Commit: "c2", Spec: []byte(`{"image":"ghcr.io/a/web:2"}`), AppliedAt: t0.Add(time.Minute)},
			{Repo: "r", Service: "web", Role: "web", Host: "web-2", Version: "v1", Commit: "c1", Spec: []byte(`{"image":"ghcr.io/a/web:1"}`), AppliedAt: t0},
			{Repo: "r", Service: "api", Role: "web", Host: "web-2", Version: "v9", Commit: "c1", Spec: []byte(`{}`), Image: "given:9", AppliedAt: t0},
			{Repo: "r", Service: "db", Role: "db", Host: "db-1", Version: "v3", Commit: "c1", Spec: []byte(`not json`), AppliedAt: t0},
			{Repo: "other", Service: "web", Role: "web", Host: "web-1", Version: "v7", Commit: "c0", Spec: []byte(`{"image":"x"}`)},
		} {
			if err := s.PutApplied(ctx, a); err != nil {
				t.Fatalf("PutApplied(%+v): %v", a, err)
			}
		}
		check := func(when string) {
			t.Helper()
			got, err := s.ListFleet(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			var rows []string
			for _, a := range got {
				if a.Spec != nil {
					t.Errorf("%s: ListFleet returned the spec of %s@%s", when, a.Service, a.Host)
				}
				rows = append(rows, fmt.Sprintf("%s/%s@%s:%s %s %s %s", a.Service, a.Role, a.Host, a.Version, a.Commit, a.Image, a.AppliedAt.UTC().Format(time.TimeOnly)))
			}
			want := []string{
				"api/web@web-2:v9 c1 given:9 03:04:05",
				"db/db@db-1:v3 c1  03:04:05",
				"web/worker@web-1:v2 c2 ghcr.io/a/web:2 03:05:05",
				"web/web@web-2:v1 c1 ghcr.io/a/web:1 03:04:05",
			}
			if !equalStrings(rows, want) {
				t.Errorf("%s: ListFleet = %q, want %q (the newest role per service and host, sorted by service and host)", when, rows, want)
			}
		}
		check("after PutApplied")
		if got := mustApplied(t, s, "r"); got[len(got)-1].Image != "ghcr.io/a/web:2" || got[0].Image != "given:9" {
			t.Errorf("ListApplied's images: %+v", got)
		}
		// Another process's writes show at once (ListFleet caches until the
		// repo's generation moves).
		s2 := open(t, dsn)
		if err := s2.PutApplied(ctx, Applied{Repo: "r", Service: "web", Role: "web", Host: "web-3", Version: "v1", Commit: "c1", Spec: []byte(`{"image":"ghcr.io/a/web:1"}`), AppliedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ListFleet(ctx, "r"); err != nil || len(got) != 5 || got[4].Host != "web-3" {
			t.Errorf("after another store's PutApplied ListFleet = %+v, %v; want web@web-3 last", got, err)
		}
		if err := s2.DeleteApplied(ctx, "r", "web", "web", "web-3"); err != nil {
			t.Fatal(err)
		}
		check("after another store's DeleteApplied")
		if err := s2.DeleteApplied(ctx, "r", "web", "web", "nowhere"); err != nil {
			t.Errorf("DeleteApplied of a missing target: %v", err)
		}
		// A copy: changing the answer changes no later one.
		got, _ := s.ListFleet(ctx, "r")
		got[0].Version = "changed"
		check("after changing an answer")

		// Migration 4 fills the image of rows applied before it existed.
		s.Close()
		db, dialect, closeDB, err := OpenDB(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := migrations.Down(ctx, db, dialect, 1); err != nil {
			t.Fatalf("down one migration: %v", err)
		}
		closeDB()
		s = open(t, dsn)
		got, err = s.ListFleet(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range got {
			want := map[string]string{"api": "", "db": "", "web": "ghcr.io/a/web:"}[a.Service]
			if want == "" && a.Image != "" || want != "" && !strings.HasPrefix(a.Image, want) {
				t.Errorf("after the migration %s@%s has image %q, want %q… (from its spec)", a.Service, a.Host, a.Image, want)
			}
		}
	})

	t.Run("Versions", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		put := func(host, version, commit string, at time.Time) {
			t.Helper()
			if err := s.PutApplied(ctx, Applied{Repo: "r", Service: "web", Role: "web", Host: host, Version: version, Commit: commit, Spec: []byte(`{"v":"` + version + `"}`), AppliedAt: at}); err != nil {
				t.Fatal(err)
			}
		}
		put("web-1", "v1", "c1", t0)
		put("web-2", "v1", "c1", t0.Add(time.Second))
		put("web-1", "v2", "c2", t0.Add(time.Hour))
		put("web-1", "v1", "c3", t0.Add(2*time.Hour))    // the revert
		put("web-2", "v2", "c2", t0.Add(30*time.Minute)) // a late, older write must not move v2 ahead
		if err := s.PutApplied(ctx, Applied{Repo: "r", Service: "worker", Role: "jobs", Host: "w-1", Version: "v5", Spec: []byte(`{}`), AppliedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteApplied(ctx, "r", "web", "web", "web-1"); err != nil {
			t.Fatal(err)
		}
		vs, err := s.ListVersions(ctx, "r", "web")
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 2 {
			t.Fatalf("ListVersions = %+v, want v1 and v2 (one entry per role and version; deleting a target keeps history)", vs)
		}
		v1, v2 := vs[0], vs[1]
		if v1.Version != "v1" || v1.Commit != "c3" || !v1.FirstApplied.Equal(t0) || !v1.LastApplied.Equal(t0.Add(2*time.Hour)) || string(v1.Spec) != `{"v":"v1"}` || v1.Role != "web" {
			t.Errorf("newest = %+v; want v1, last applied by c3 at t0+2h, first at t0", v1)
		}
		if v2.Version != "v2" || v2.Commit != "c2" || !v2.FirstApplied.Equal(t0.Add(time.Hour)) || !v2.LastApplied.Equal(t0.Add(time.Hour)) {
			t.Errorf("second = %+v; want v2 first and last applied at t0+1h", v2)
		}
		if vs, _ := s.ListVersions(ctx, "r", "worker"); len(vs) != 1 || vs[0].Role != "jobs" {
			t.Errorf("worker versions = %+v, want its one", vs)
		}
	})

	t.Run("Deployments", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		before := time.Now().Truncate(time.Microsecond)
		id1, err := s.CreateDeployment(ctx, Deployment{Repo: "r", Service: "web", Commit: "c1", Trigger: "push"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := s.GetDeployment(ctx, id1)
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != id1 || d.Status != StatusPending || d.Repo != "r" || d.Plan != "" || d.Service != "web" || d.Commit != "c1" || d.Trigger != "push" || d.FinishedAt != nil || d.StartedAt.Before(before) || d.StartedAt.After(time.Now()) {
			t.Errorf("new deployment = %+v; want pending, started now, not finished", d)
		}
		if err := s.FinishDeployment(ctx, id1, StatusFailed, "web-1: health: timeout"); err != nil {
			t.Fatal(err)
		}
		d, _ = s.GetDeployment(ctx, id1)
		if d.Status != StatusFailed || d.Error != "web-1: health: timeout" || d.FinishedAt == nil || d.FinishedAt.Before(d.StartedAt) {
			t.Errorf("finished deployment = %+v; want failed with the error and a finish time", d)
		}
		if err := s.FinishDeployment(ctx, id1, StatusDeploying, ""); err == nil {
			t.Errorf("FinishDeployment with a non-final status succeeded")
		}
		if _, err := s.CreateDeployment(ctx, Deployment{Repo: "r", Status: "bogus"}); err == nil {
			t.Errorf("CreateDeployment with an unknown status succeeded")
		}
		if err := s.FinishDeployment(ctx, 999999, StatusDeployed, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("FinishDeployment(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.GetDeployment(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetDeployment(unknown) = %v, want ErrNotFound", err)
		}

		id2, _ := s.CreateDeployment(ctx, Deployment{Repo: "r", Service: "api", Commit: "c2", Status: StatusDeploying})
		id3, _ := s.CreateDeployment(ctx, Deployment{Repo: "other", Service: "web", Commit: "c2"})
		id4, _ := s.CreateDeployment(ctx, Deployment{Repo: "r", Service: "web", Commit: "c3"})
		if err := s.FinishDeployment(ctx, id4, StatusDeployed, ""); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.GetDeployment(ctx, id4); d.Status != StatusDeployed || d.Error != "" || d.FinishedAt == nil {
			t.Errorf("deployed deployment = %+v; want deployed with a finish time", d)
		}
		if !(id1 < id2 && id2 < id3 && id3 < id4) {
			t.Fatalf("ids %d %d %d %d are not increasing", id1, id2, id3, id4)
		}
		// Hosts, as the executor writes them: ROLE@HOST, or HOST alone.
		for id, host := range map[int64]string{id1: "web@server-01", id2: "server-02", id3: "web@server_1x", id4: "web@server-01"} {
			if err := s.AddEvent(ctx, Event{DeploymentID: id, Host: host, Step: "pull", Status: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			f    DeploymentFilter
			want []int64
		}{
			{DeploymentFilter{}, []int64{id4, id3, id2, id1}},
			{DeploymentFilter{Repo: "r"}, []int64{id4, id2, id1}},
			{DeploymentFilter{Repo: "r", Service: "web"}, []int64{id4, id1}},
			{DeploymentFilter{Commit: "c2"}, []int64{id3, id2}},
			{DeploymentFilter{Status: StatusDeploying}, []int64{id2}},
			{DeploymentFilter{Status: StatusFailed, Repo: "r"}, []int64{id1}},
			{DeploymentFilter{Limit: 2}, []int64{id4, id3}},
			{DeploymentFilter{BeforeID: id3, Limit: 1}, []int64{id2}},
			{DeploymentFilter{Repo: "none"}, nil},
			{DeploymentFilter{Host: "server-01"}, []int64{id4, id1}},
			{DeploymentFilter{Host: "server-02"}, []int64{id2}},
			{DeploymentFilter{Host: "server-01", Service: "web", Limit: 1}, []int64{id4}},
			{DeploymentFilter{Host: "server_1x"}, []int64{id3}},
			{DeploymentFilter{Host: "server%"}, nil},   // LIKE's wildcards are plain characters
			{DeploymentFilter{Host: "server_01"}, nil}, // … and _ matches only _
			{DeploymentFilter{Host: "server"}, nil},
		} {
			ds, err := s.ListDeployments(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, d := range ds {
				got = append(got, d.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("ListDeployments(%+v) = %v, want %v", c.f, got, c.want)
			}
		}
	})

	t.Run("DeploymentPlan", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		plan := "Plan for r at 0123456: 1 to update.\n\nweb\n  ~ web@web-1  v1 -> v2\n"
		id, err := s.CreateDeployment(ctx, Deployment{Repo: "r", Service: "web", Commit: "c1", Trigger: "push", Plan: plan})
		if err != nil {
			t.Fatal(err)
		}
		if d, err := s.GetDeployment(ctx, id); err != nil || d.Plan != plan {
			t.Errorf("GetDeployment's plan = %q, %v; want %q", d.Plan, err, plan)
		}
		ds, err := s.ListDeployments(ctx, DeploymentFilter{Repo: "r"})
		if err != nil || len(ds) != 1 || ds[0].ID != id || ds[0].Plan != "" {
			t.Errorf("ListDeployments = %+v, %v; want deployment %d without its plan", ds, err, id)
		}
	})

	t.Run("EventsChanged", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		n, ok := s.(interface{ EventsChanged() <-chan struct{} })
		if !ok {
			t.Fatalf("%T has no EventsChanged", s)
		}
		id, err := s.CreateDeployment(ctx, Deployment{Repo: "r", Service: "web"})
		if err != nil {
			t.Fatal(err)
		}
		for _, write := range []struct {
			what string
			do   func() error
		}{
			{"AddEvent", func() error {
				return s.AddEvent(ctx, Event{DeploymentID: id, Host: "web-1", Step: "pull", Status: "ok"})
			}},
			{"FinishDeployment", func() error { return s.FinishDeployment(ctx, id, StatusDeployed, "") }},
		} {
			ch := n.EventsChanged()
			select {
			case <-ch:
				t.Fatalf("before %s: EventsChanged is closed already", write.what)
			default:
			}
			if err := write.do(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-ch:
			default:
				t.Errorf("%s did not close EventsChanged", write.what)
			}
		}
	})

	t.Run("Events", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		a, _ := s.CreateDeployment(ctx, Deployment{Repo: "r", Commit: "c1"})
		b, _ := s.CreateDeployment(ctx, Deployment{Repo: "r", Commit: "c2"})
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // one time for all: order is insertion order
		steps := []string{"pull", "start", "health", "switch", "stop"}
		for i, step := range steps {
			if err := s.AddEvent(ctx, Event{DeploymentID: a, Host: "web-1", Step: step, Status: "ok", Message: fmt.Sprint(i), Actor: "github:alice", At: at}); err != nil {
				t.Fatal(err)
			}
			if err := s.AddEvent(ctx, Event{DeploymentID: b, Host: "web-2", Step: step, Status: "started"}); err != nil {
				t.Fatal(err)
			}
		}
		es, err := s.ListEvents(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != len(steps) {
			t.Fatalf("ListEvents = %d events, want %d", len(es), len(steps))
		}
		for i, e := range es {
			if e.Step != steps[i] || e.DeploymentID != a || e.Host != "web-1" || e.Message != fmt.Sprint(i) || e.Actor != "github:alice" || !e.At.Equal(at) {
				t.Errorf("event %d = %+v, want step %s of deployment %d by github:alice", i, e, steps[i], a)
			}
		}
		if es, _ := s.ListEvents(ctx, b); len(es) != len(steps) || es[0].At.IsZero() || es[0].Host != "web-2" || es[0].Actor != "" {
			t.Errorf("the other deployment's events = %+v", es)
		}
		if err := s.AddEvent(ctx, Event{DeploymentID: 424242, Step: "pull"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("AddEvent to an unknown deployment = %v, want ErrNotFound", err)
		}
	})

	t.Run("Tokens", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		hashA, hashB := bytes.Repeat([]byte{0xa1}, 32), bytes.Repeat([]byte{0xb2}, 32)
		if err := s.CreateToken(ctx, Token{Name: "ci", Role: "viewer", Hash: hashA, CreatedBy: "alice", CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateToken(ctx, Token{Name: "bot", Role: "deployer", Hash: hashB}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateToken(ctx, Token{Name: "ci", Role: "admin", Hash: bytes.Repeat([]byte{0xc3}, 32)}); !errors.Is(err, ErrExists) {
			t.Errorf("CreateToken with a taken name = %v, want ErrExists", err)
		}
		if err := s.CreateToken(ctx, Token{Name: "dup", Role: "viewer", Hash: hashA}); err == nil {
			t.Errorf("CreateToken with another token's hash succeeded")
		}
		if err := s.CreateToken(ctx, Token{Name: "x", Role: "root", Hash: bytes.Repeat([]byte{0xd4}, 32)}); err == nil {
			t.Errorf("CreateToken with role root succeeded")
		}
		ts, err := s.ListTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != 2 || ts[0].Name != "bot" || ts[1].Name != "ci" {
			t.Fatalf("ListTokens = %+v, want bot and ci, sorted by name", ts)
		}
		if c := ts[1]; c.Role != "viewer" || !bytes.Equal(c.Hash, hashA) || c.CreatedBy != "alice" || !c.CreatedAt.Equal(at) {
			t.Errorf("round trip: %+v", c)
		}
		if ts[0].CreatedAt.IsZero() {
			t.Errorf("a zero CreatedAt was not set to now: %+v", ts[0])
		}
		got, err := s.TokenByHash(ctx, hashB)
		if err != nil || got.Name != "bot" || got.Role != "deployer" {
			t.Errorf("TokenByHash = %+v %v, want bot (deployer)", got, err)
		}
		if _, err := s.TokenByHash(ctx, bytes.Repeat([]byte{0xee}, 32)); !errors.Is(err, ErrNotFound) {
			t.Errorf("TokenByHash of an unknown hash = %v, want ErrNotFound", err)
		}
		if err := s.RevokeToken(ctx, "bot"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TokenByHash(ctx, hashB); !errors.Is(err, ErrNotFound) {
			t.Errorf("TokenByHash after revoke = %v, want ErrNotFound", err)
		}
		if err := s.RevokeToken(ctx, "bot"); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoking a revoked token = %v, want ErrNotFound", err)
		}
	})

	t.Run("PullRequests", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		for _, pr := range []PullRequest{
			{Repo: "r", Number: 7, HeadSHA: "aaa", Title: "old title", Author: "alice", Markdown: "old plan", Status: "success", Summary: "1 to change"},
			{Repo: "r", Number: 9, HeadSHA: "ccc", Title: "add api", Author: "bob", URL: "https://github.example/o/r/pull/9", Markdown: "**plan**", Status: "failure", Summary: "invalid config", UpdatedAt: at},
			{Repo: "other", Number: 1, HeadSHA: "ddd"},
			{Repo: "r", Number: 7, HeadSHA: "bbb", Title: "new title", Author: "alice", Markdown: "new plan", Status: "error", Summary: "refused"},
		} {
			if err := s.PutPullRequest(ctx, pr); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutPullRequest(ctx, PullRequest{Repo: "r"}); err == nil {
			t.Errorf("PutPullRequest without a number succeeded")
		}
		prs, err := s.ListPullRequests(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		if len(prs) != 2 || prs[0].Number != 9 || prs[1].Number != 7 {
			t.Fatalf("ListPullRequests(r) = %+v, want #9 then #7", prs)
		}
		want := PullRequest{Repo: "r", Number: 9, HeadSHA: "ccc", Title: "add api", Author: "bob", URL: "https://github.example/o/r/pull/9", Markdown: "**plan**", Status: "failure", Summary: "invalid config", UpdatedAt: at}
		if prs[0] != want {
			t.Errorf("round trip: %+v, want %+v", prs[0], want)
		}
		if p := prs[1]; p.HeadSHA != "bbb" || p.Title != "new title" || p.Markdown != "new plan" || p.Status != "error" || p.UpdatedAt.IsZero() {
			t.Errorf("#7 was not replaced by its second plan: %+v", p)
		}
		if all, _ := s.ListPullRequests(ctx, ""); len(all) != 3 || all[0].Repo != "other" {
			t.Errorf("ListPullRequests(\"\") = %+v, want all three, sorted by repo", all)
		}
		if err := s.DeletePullRequest(ctx, "r", 7); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePullRequest(ctx, "r", 7); err != nil {
			t.Errorf("deleting a deleted pull request = %v, want nil", err)
		}
		if prs, _ := s.ListPullRequests(ctx, "r"); len(prs) != 1 || prs[0].Number != 9 {
			t.Errorf("after delete = %+v, want #9 only", prs)
		}
	})

	t.Run("Actions", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		var ids []int64
		for _, a := range []Action{
			{Actor: "github:alice", Action: "hold", Repo: "r", Service: "web", Detail: "at v1", At: at},
			{Actor: "token:ci", Action: "sync", Repo: "r"},
			{Actor: "github:bob", Action: "cancel", Repo: "other", Service: "api", DeploymentID: 42},
			{Actor: "github:alice", Action: "release", Repo: "r", Service: "web"},
		} {
			id, err := s.AddAction(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if ids[0] >= ids[1] || ids[1] >= ids[2] || ids[2] >= ids[3] {
			t.Errorf("ids %v do not grow", ids)
		}
		if _, err := s.AddAction(ctx, Action{Action: "hold"}); err == nil {
			t.Errorf("AddAction without an actor succeeded")
		}
		all, err := s.ListActions(ctx, ActionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 4 || all[0].Action != "release" || all[3].Action != "hold" {
			t.Fatalf("ListActions = %+v, want 4, newest first", all)
		}
		if a := all[3]; a != (Action{ID: ids[0], At: at, Actor: "github:alice", Action: "hold", Repo: "r", Service: "web", Detail: "at v1"}) {
			t.Errorf("round trip: %+v", a)
		}
		if all[1].DeploymentID != 42 || all[0].At.IsZero() {
			t.Errorf("deployment id or default time lost: %+v", all[:2])
		}
		for _, c := range []struct {
			f    ActionFilter
			want []string
		}{
			{ActionFilter{Repo: "r"}, []string{"release", "sync", "hold"}},
			{ActionFilter{Repo: "r", Service: "web"}, []string{"release", "hold"}},
			{ActionFilter{Actor: "github:bob"}, []string{"cancel"}},
			{ActionFilter{Action: "sync"}, []string{"sync"}},
			{ActionFilter{Repo: "r", Limit: 1}, []string{"release"}},
		} {
			got, err := s.ListActions(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range got {
				names = append(names, a.Action)
			}
			if fmt.Sprint(names) != fmt.Sprint(c.want) {
				t.Errorf("ListActions(%+v) = %v, want %v", c.f, names, c.want)
			}
		}
	})

	t.Run("Holds", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		for _, h := range []Hold{
			{Repo: "r", Service: "web", Version: "v1", Reason: "rollback by alice", Spec: []byte(`{"a":1}`)},
			{Repo: "r", Service: "api", Version: "v3"},
			{Repo: "other", Service: "web", Version: "v9"},
			{Repo: "r", Service: "web", Version: "v2", Reason: "rollback by bob", Spec: []byte(`{"a":2}`)},
		} {
			if err := s.PutHold(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		hs, err := s.ListHolds(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) != 2 || hs[0].Service != "api" || hs[1].Service != "web" || hs[1].Version != "v2" || hs[1].Reason != "rollback by bob" || string(hs[1].Spec) != `{"a":2}` || hs[1].CreatedAt.IsZero() {
			t.Fatalf("ListHolds = %+v; want api, then web replaced by the second hold", hs)
		}
		if err := s.DeleteHold(ctx, "r", "web"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteHold(ctx, "r", "web"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleting a released hold = %v, want ErrNotFound", err)
		}
		if hs, _ := s.ListHolds(ctx, "r"); len(hs) != 1 || hs[0].Service != "api" {
			t.Errorf("after delete ListHolds = %+v", hs)
		}
		if hs, _ := s.ListHolds(ctx, "other"); len(hs) != 1 {
			t.Errorf("other repo's holds = %+v", hs)
		}
	})

	t.Run("Locks", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		ok, h, err := s.AcquireLock(ctx, "repo:r", "a", time.Minute)
		if err != nil || !ok || h.Owner != "a" || h.Name != "repo:r" || h.ExpiresAt.Before(time.Now().Add(50*time.Second)) {
			t.Fatalf("first AcquireLock = %v %+v %v; want ok, held by a for a minute", ok, h, err)
		}
		ok, h, err = s.AcquireLock(ctx, "repo:r", "b", time.Minute)
		if err != nil || ok || h.Owner != "a" {
			t.Fatalf("contended AcquireLock = %v %+v %v; want refused, holder a", ok, h, err)
		}
		if ok, _, err := s.AcquireLock(ctx, "repo:other", "b", time.Minute); err != nil || !ok {
			t.Errorf("another name: %v %v; want ok", ok, err)
		}
		ok, h2, err := s.AcquireLock(ctx, "repo:r", "a", 2*time.Minute)
		if err != nil || !ok || !h2.ExpiresAt.After(h.ExpiresAt) {
			t.Errorf("re-acquire by the holder = %v %+v %v; want ok and a later expiry than %v", ok, h2, err, h.ExpiresAt)
		}
		if err := s.RenewLock(ctx, "repo:r", "a", time.Hour); err != nil {
			t.Errorf("RenewLock by the holder: %v", err)
		}
		if _, h, _ := s.AcquireLock(ctx, "repo:r", "b", time.Minute); h.ExpiresAt.Before(time.Now().Add(50 * time.Minute)) {
			t.Errorf("after renewing for an hour the lock expires at %v", h.ExpiresAt)
		}
		if err := s.RenewLock(ctx, "repo:r", "b", time.Minute); !errors.Is(err, ErrNotHeld) {
			t.Errorf("RenewLock by another = %v, want ErrNotHeld", err)
		}
		if err := s.ReleaseLock(ctx, "repo:r", "b"); !errors.Is(err, ErrNotHeld) {
			t.Errorf("ReleaseLock by another = %v, want ErrNotHeld", err)
		}
		if err := s.ReleaseLock(ctx, "repo:r", "a"); err != nil {
			t.Fatalf("ReleaseLock by the holder: %v", err)
		}
		if err := s.ReleaseLock(ctx, "repo:r", "a"); !errors.Is(err, ErrNotHeld) {
			t.Errorf("second ReleaseLock = %v, want ErrNotHeld", err)
		}
		if ok, h, err := s.AcquireLock(ctx, "repo:r", "b", time.Minute); err != nil || !ok || h.Owner != "b" {
			t.Errorf("AcquireLock after release = %v %+v %v; want b holds it", ok, h, err)
		}

		// An expired lease is taken over; its former holder has lost it.
		if ok, _, err := s.AcquireLock(ctx, "expiring", "a", -time.Second); err != nil || !ok {
			t.Fatalf("AcquireLock with a lease in the past: %v %v", ok, err)
		}
		ok, h, err = s.AcquireLock(ctx, "expiring", "b", time.Minute)
		if err != nil || !ok || h.Owner != "b" {
			t.Fatalf("take-over of an expired lease = %v %+v %v; want b holds it", ok, h, err)
		}
		if err := s.RenewLock(ctx, "expiring", "a", time.Minute); !errors.Is(err, ErrNotHeld) {
			t.Errorf("RenewLock by the former holder = %v, want ErrNotHeld", err)
		}
		if err := s.ReleaseLock(ctx, "expiring", "a"); !errors.Is(err, ErrNotHeld) {
			t.Errorf("ReleaseLock by the former holder = %v, want ErrNotHeld", err)
		}
		if ok, h, _ := s.AcquireLock(ctx, "expiring", "a", time.Minute); ok || h.Owner != "b" {
			t.Errorf("former holder re-acquires: ok=%v holder %+v; want refused, b holds it", ok, h)
		}
		if _, _, err := s.AcquireLock(ctx, "", "a", time.Minute); err == nil {
			t.Errorf("AcquireLock with no name succeeded")
		}
	})

	t.Run("HoldLock", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		var logs testutil.SyncBuffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		const lease = 900 * time.Millisecond // renewed every 300 ms
		lost := errors.New("lost the test lock")
		if ok, _, err := s.AcquireLock(ctx, "held", "a", lease); err != nil || !ok {
			t.Fatalf("AcquireLock = %v %v", ok, err)
		}
		held, release := HoldLock(ctx, s, "held", "a", lease, lost, log)
		// Renewals keep it past its lease.
		time.Sleep(2 * lease)
		if err := held.Err(); err != nil {
			t.Fatalf("held context ended while renewed: %v", context.Cause(held))
		}
		if ok, h, _ := s.AcquireLock(ctx, "held", "b", time.Minute); ok || h.Owner != "a" {
			t.Fatalf("another owner took a renewed lease (holder %q)", h.Owner)
		}
		// Taken over, as after an expiry: the holder is told to stop.
		if err := s.ReleaseLock(ctx, "held", "a"); err != nil {
			t.Fatal(err)
		}
		if ok, _, err := s.AcquireLock(ctx, "held", "b", time.Minute); err != nil || !ok {
			t.Fatalf("take over: %v %v", ok, err)
		}
		select {
		case <-held.Done():
		case <-time.After(5 * lease):
			t.Fatal("the held context did not end when the lease was lost")
		}
		if cause := context.Cause(held); cause != lost {
			t.Errorf("cause = %v, want %v", cause, lost)
		}
		release()
		if ok, h, _ := s.AcquireLock(ctx, "held", "c", time.Minute); ok || h.Owner != "b" {
			t.Errorf("release gave up the new owner's lease (holder %q)", h.Owner)
		}
		if got := logs.String(); got != "" {
			t.Errorf("a lost lease is the holder's to handle, not a warning; logged:\n%s", got)
		}
	})

	t.Run("HoldLockStoreDown", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		var logs testutil.SyncBuffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		const lease = 600 * time.Millisecond
		if ok, _, err := s.AcquireLock(ctx, "held", "a", lease); err != nil || !ok {
			t.Fatalf("AcquireLock = %v %v", ok, err)
		}
		held, release := HoldLock(ctx, s, "held", "a", lease, errors.New("lost"), log)
		// A store that fails is not a lost lease: the work goes on while
		// the renewal is retried (the store may be back in time).
		s.Close()
		time.Sleep(2 * lease)
		if err := held.Err(); err != nil {
			t.Errorf("held context ended when the store failed: %v", context.Cause(held))
		}
		release()
		if got := logs.String(); !strings.Contains(got, "lease not renewed") || !strings.Contains(got, "lease not released") {
			t.Errorf("failed renewals and release not logged:\n%s", got)
		}
	})

	t.Run("LockRace", func(t *testing.T) {
		t.Parallel()
		dsn := newDSN(t)
		// Two stores on one database stand for two daemon processes.
		stores := []Store{open(t, dsn), open(t, dsn)}
		ctx := t.Context()
		for round, setup := range []func() error{
			func() error { return nil }, // nobody holds it
			func() error { // an expired holder
				_, _, err := stores[0].AcquireLock(ctx, "race-1", "old", -time.Second)
				return err
			},
		} {
			name := fmt.Sprintf("race-%d", round)
			if err := setup(); err != nil {
				t.Fatal(err)
			}
			const n = 16
			var wg sync.WaitGroup
			oks := make([]bool, n)
			holders := make([]Lock, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					oks[i], holders[i], errs[i] = stores[i%2].AcquireLock(ctx, name, fmt.Sprintf("owner-%d", i), time.Minute)
				})
			}
			close(start)
			wg.Wait()
			winners := 0
			winner := ""
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("owner-%d: %v", i, errs[i])
				}
				if oks[i] {
					winners++
					winner = fmt.Sprintf("owner-%d", i)
				}
			}
			if winners != 1 {
				t.Fatalf("%s: %d goroutines acquired the lock, want exactly 1", name, winners)
			}
			for i := range n {
				if holders[i].Owner != winner {
					t.Errorf("%s: owner-%d saw holder %q, want %q", name, i, holders[i].Owner, winner)
				}
			}
		}
	})

	t.Run("Deliveries", func(t *testing.T) {
		t.Parallel()
		s, ctx := fresh(t), t.Context()
		at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
		isNew, err := s.RecordDelivery(ctx, Delivery{ID: "d-1", Event: "push", Repo: "acme/deploy", Payload: []byte(`{"ref":"refs/heads/main"}`), ReceivedAt: at, Outcome: "enqueued"})
		if err != nil || !isNew {
			t.Fatalf("first RecordDelivery = %v %v, want new", isNew, err)
		}
		isNew, err = s.RecordDelivery(ctx, Delivery{ID: "d-1", Event: "ping", Payload: []byte(`{}`), Outcome: "ignored: ping"})
		if err != nil || isNew {
			t.Fatalf("repeated RecordDelivery = %v %v, want not new", isNew, err)
		}
		d, err := s.GetDelivery(ctx, "d-1")
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != "d-1" || d.Event != "push" || d.Repo != "acme/deploy" || string(d.Payload) != `{"ref":"refs/heads/main"}` || !d.ReceivedAt.Equal(at) || d.Outcome != "enqueued" {
			t.Errorf("GetDelivery = %+v; want the first delivery, untouched by the repeat, with its outcome", d)
		}
		if _, err := s.GetDelivery(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetDelivery(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.RecordDelivery(ctx, Delivery{}); err == nil {
			t.Errorf("RecordDelivery without an id succeeded")
		}
	})

	t.Run("DeliveryRace", func(t *testing.T) {
		t.Parallel()
		dsn := newDSN(t)
		stores := []Store{open(t, dsn), open(t, dsn)}
		const n = 16
		news := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				news[i], errs[i] = stores[i%2].RecordDelivery(t.Context(), Delivery{ID: "same", Event: "push", Payload: []byte(fmt.Sprint(i))})
			})
		}
		close(start)
		wg.Wait()
		count := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("RecordDelivery %d: %v", i, errs[i])
			}
			if news[i] {
				count++
			}
		}
		if count != 1 {
			t.Errorf("%d concurrent RecordDelivery calls of one id reported new, want exactly 1", count)
		}
	})

	t.Run("SecretKey", func(t *testing.T) {
		t.Parallel()
		dsn := newDSN(t)
		stores := []Store{open(t, dsn), open(t, dsn)}
		const n = 8
		keys := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				keys[i], errs[i] = stores[i%2].SecretKey(t.Context())
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("SecretKey %d: %v", i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("concurrent first calls disagree: %x vs %x", keys[i], keys[0])
			}
		}
		if len(keys[0]) != 32 || bytes.Equal(keys[0], make([]byte, 32)) {
			t.Fatalf("key = %x; want 32 random bytes", keys[0])
		}
		keys[0][0] ^= 0xff // the caller's copy is its own
		again, err := stores[0].SecretKey(t.Context())
		if err != nil || !bytes.Equal(again, keys[1]) {
			t.Errorf("second call = %x %v; want %x", again, err, keys[1])
		}
		other, err := fresh(t).SecretKey(t.Context())
		if err != nil || bytes.Equal(other, keys[1]) {
			t.Errorf("another database's key = %x %v; want a different key", other, err)
		}
	})

	t.Run("Reopen", func(t *testing.T) {
		t.Parallel()
		dsn := newDSN(t)
		ctx := t.Context()
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		key, err := s.SecretKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutApplied(ctx, Applied{Repo: "r", Service: "web", Role: "web", Host: "h", Version: "v1", Spec: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		id, err := s.CreateDeployment(ctx, Deployment{Repo: "r", Commit: "c"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddEvent(ctx, Event{DeploymentID: id, Step: "pull"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutHold(ctx, Hold{Repo: "r", Service: "web", Version: "v1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordDelivery(ctx, Delivery{ID: "d"}); err != nil {
			t.Fatal(err)
		}
		if ok, _, err := s.AcquireLock(ctx, "l", "a", time.Hour); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		s = open(t, dsn)
		if k, err := s.SecretKey(ctx); err != nil || !bytes.Equal(k, key) {
			t.Errorf("key after reopen = %x %v, want %x", k, err, key)
		}
		if as := mustApplied(t, s, "r"); len(as) != 1 {
			t.Errorf("applied after reopen = %v", targets(as))
		}
		if vs, _ := s.ListVersions(ctx, "r", "web"); len(vs) != 1 {
			t.Errorf("versions after reopen = %+v", vs)
		}
		if d, err := s.GetDeployment(ctx, id); err != nil || d.Commit != "c" {
			t.Errorf("deployment after reopen = %+v %v", d, err)
		}
		if es, _ := s.ListEvents(ctx, id); len(es) != 1 {
			t.Errorf("events after reopen = %+v", es)
		}
		if hs, _ := s.ListHolds(ctx, "r"); len(hs) != 1 {
			t.Errorf("holds after reopen = %+v", hs)
		}
		if isNew, _ := s.RecordDelivery(ctx, Delivery{ID: "d"}); isNew {
			t.Errorf("delivery forgotten after reopen")
		}
		if ok, h, _ := s.AcquireLock(ctx, "l", "b", time.Hour); ok || h.Owner != "a" {
			t.Errorf("lock after reopen: ok=%v holder %+v; want still held by a", ok, h)
		}
	})
}

func mustApplied(t *testing.T, s Store, repo string) []Applied {
	t.Helper()
	as, err := s.ListApplied(t.Context(), repo)
	if err != nil {
		t.Fatalf("ListApplied(%s): %v", repo, err)
	}
	return as
}

func targets(as []Applied) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Service+"/"+a.Role+"@"+a.Host+":"+a.Version)
	}
	return out
}

func equalStrings(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }
