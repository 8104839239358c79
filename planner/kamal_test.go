package planner_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

// TestPlanner_KamalDeployFile plans Kamal's own generated deploy.yml,
// unchanged, as a service file.
func TestPlanner_KamalDeployFile(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile("testdata/kamal/deploy.yml")
	require.NoError(t, err)
	plan, errs := planFiles(t, map[string]string{"fleet.yml": "servers: {}\n", "services/my-app.yml": string(body)},
		map[string]string{"RAILS_MASTER_KEY": "m", "MYSQL_ROOT_PASSWORD": "p"})
	require.Nil(t, errs)

	web := spec(t, plan, "my-app/web@192.168.0.1")
	require.Equal(t, "my-user/my-app", web.Image)
	require.Equal(t, map[string]string{"SOLID_QUEUE_IN_PUMA": "true"}, web.Env)
	require.Equal(t, "RAILS_MASTER_KEY", web.Secrets["RAILS_MASTER_KEY"].Name)
	require.Equal(t, &planner.Proxy{Hosts: []string{"app.example.com"}, SSL: true, AppPort: 80, HealthPath: "/up",
		HealthInterval: planner.Duration(1e9), HealthTimeout: planner.Duration(5e9), ResponseTimeout: planner.Duration(30e9)}, web.Proxy)
	require.Equal(t, []planner.Volume{{Source: "my_app_storage", Target: "/rails/storage"}}, web.Volumes)

	job := spec(t, plan, "my-app/job@192.168.0.1")
	require.Equal(t, []string{"bin/jobs"}, job.Cmd)
	require.Nil(t, job.Proxy)

	db := spec(t, plan, "my-app-db/accessory@192.168.0.2")
	require.Equal(t, "mysql:8.0", db.Image)
	require.Equal(t, []string{"127.0.0.1:3306:3306"}, db.Options.Publish)
	require.Equal(t, "%", db.Env["MYSQL_ROOT_HOST"])
	require.True(t, db.Stateful)

	require.Equal(t, planner.Host{Name: "192.168.0.1", Address: "192.168.0.1", User: "app", Port: 22}, plan.Hosts["192.168.0.1"])
	require.Equal(t, &planner.Registry{Username: "my-user", PasswordSecret: "KAMAL_REGISTRY_PASSWORD"}, plan.Services[0].Registry)
	// Every key bosun does not use is reported, none dropped silently.
	require.Len(t, plan.Notices, 4, "%q", plan.Notices)
	for i, want := range []string{"image my-user/my-app has no tag", "aliases is ignored", "asset_path is ignored", "builder is ignored"} {
		require.Contains(t, plan.Notices[i], want)
	}
}
