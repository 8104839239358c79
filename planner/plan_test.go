package planner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

// TestPlan_JSON checks the documented JSON document (docs/plan-json.md).
func TestPlan_JSON(t *testing.T) {
	t.Parallel()
	repo := map[string]string{"services/app.yml": "service: app\nimage: a/b:1\nservers: [web-1]\nenv: {secret: [KEY]}\n"}
	p := planner.New(planner.Config{Secrets: mapSecrets{"KEY": "s3cr3t"}, SecretKey: []byte("k")})
	first, err := p.Plan(t.Context(), mapFS(repo), planner.Input{Repo: "r", Commit: "c1"})
	require.NoError(t, err)
	applied := []planner.Applied{{Target: first.Changes[0].Target, Version: first.Changes[0].Version, Spec: *first.Changes[0].Desired},
		{Target: planner.Target{Service: "gone", Role: "web", Host: "web-2"}, Version: "aaaaaaaaaaaa"}}
	repo["services/app.yml"] = "service: app\nimage: a/b:2\nservers: [web-1]\nenv: {secret: [KEY]}\n"
	pl, err := p.Plan(t.Context(), mapFS(repo), planner.Input{Repo: "r", Commit: "c2", Applied: applied})
	require.NoError(t, err)
	require.False(t, pl.Empty())
	b, err := json.Marshal(pl)
	require.NoError(t, err)
	require.NotContains(t, string(b), "s3cr3t")
	require.NotContains(t, string(b), "hmac")
	var doc struct {
		SchemaVersion int    `json:"schema_version"`
		Repo          string `json:"repo"`
		Commit        string `json:"commit"`
		Summary       map[string]int
		Changes       []struct {
			Service, Role, Host, Action, Version string
			OldVersion                           string `json:"old_version"`
			Disruptive                           bool
			Fields                               []struct{ Field, Old, New string }
		}
		Hosts map[string]struct {
			Address, User string
			Port          int
		}
		Services []struct{ Name, Standby string }
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	require.Equal(t, []struct{ Name, Standby string }{{"app", "stopped"}}, doc.Services, "the policy's standby, stopped by default")
	require.Equal(t, 1, doc.SchemaVersion)
	require.Equal(t, "c2", doc.Commit)
	require.Equal(t, map[string]int{"create": 0, "update": 1, "remove": 1, "unchanged": 0, "held": 0}, doc.Summary)
	require.Len(t, doc.Changes, 2)
	up := doc.Changes[0]
	require.Equal(t, "update", up.Action)
	require.Equal(t, first.Changes[0].Version, up.OldVersion)
	require.Equal(t, pl.Changes[0].Version, up.Version)
	require.Equal(t, []struct{ Field, Old, New string }{{"image", "a/b:1", "a/b:2"}}, up.Fields)
	require.Equal(t, "remove", doc.Changes[1].Action)
	require.Equal(t, "", doc.Changes[1].Version)
	require.Equal(t, "10.0.0.11", doc.Hosts["web-1"].Address)
	require.Equal(t, "10.0.0.12", doc.Hosts["web-2"].Address, "a removal's host comes from the inventory")
}

// TestPlan_Deterministic renders the same plan twice from maps built in
// different orders.
func TestPlan_Deterministic(t *testing.T) {
	t.Parallel()
	var outs []string
	for range 5 {
		pl, errs := planFiles(t, map[string]string{
			"services/a.yml": "service: a\nimage: a/b:1\nservers: [tag:web]\nenv: {Z: '1', A: '2', M: '3'}\nlabels: {z: '1', a: '2'}\nproxy: {host: a.example.com}\n",
			"services/b.yml": "service: b\nimage: a/b:1\nservers: [web-2, web-1]\nproxy: {host: b.example.com}\n",
		}, nil)
		require.Nil(t, errs)
		var txt, md bytes.Buffer
		_, err := pl.WriteTo(&txt)
		require.NoError(t, err)
		require.NoError(t, pl.WriteMarkdown(&md))
		js, err := json.Marshal(pl)
		require.NoError(t, err)
		outs = append(outs, txt.String()+md.String()+string(js))
	}
	for _, o := range outs[1:] {
		require.Equal(t, outs[0], o)
	}
}

// TestPlan_Cancelled checks that a cancelled context stops planning.
func TestPlan_Cancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := planner.New(planner.Config{}).Plan(ctx, mapFS(nil), planner.Input{})
	require.ErrorIs(t, err, context.Canceled)
}

// TestPlan_Empty checks that a plan whose only effect is to end a hold is
// not empty: applying it releases the hold, so callers must apply it.
func TestPlan_Empty(t *testing.T) {
	t.Parallel()
	repo := map[string]string{"services/app.yml": "service: app\nimage: a/b:1\nservers: [web-1]\n"}
	p := planner.New(planner.Config{})
	first, err := p.Plan(t.Context(), mapFS(repo), planner.Input{Repo: "r", Commit: "c1"})
	require.NoError(t, err)
	ch := first.Changes[0]
	applied := []planner.Applied{{Target: ch.Target, Version: ch.Version, Spec: *ch.Desired}}

	again, err := p.Plan(t.Context(), mapFS(repo), planner.Input{Repo: "r", Commit: "c2", Applied: applied})
	require.NoError(t, err)
	require.True(t, again.Empty(), "a re-plan of what runs is empty")

	held, err := p.Plan(t.Context(), mapFS(repo), planner.Input{Repo: "r", Commit: "c2", Applied: applied, Holds: []planner.Hold{{Service: "app", Version: ch.Version}}})
	require.NoError(t, err)
	require.Equal(t, []string{"app"}, held.ReleasedHolds)
	require.False(t, held.Empty(), "a plan that ends a hold is not empty")
}

// A plan carries the fleet.yml tags of its hosts (the dashboard filters
// servers by them); hosts without tags have none.
func TestPlan_Tags(t *testing.T) {
	t.Parallel()
	repo := map[string]string{
		"fleet.yml":        "servers:\n  web-1: {host: 10.0.0.11, tags: [web, eu-west]}\n  web-2: {host: 10.0.0.12}\n",
		"services/app.yml": "service: app\nimage: a/b:1\nservers: [web-1, web-2]\n",
	}
	pl, err := planner.New(planner.Config{SecretKey: []byte("k")}).Plan(t.Context(), mapFS(repo), planner.Input{Repo: "r", Commit: "c1"})
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"web-1": {"web", "eu-west"}}, pl.Tags)
	require.Len(t, pl.Hosts, 2)
}
