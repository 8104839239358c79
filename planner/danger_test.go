package planner_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

// TestDangers: each dangerous setting is refused without its opt-in, names
// the kind to allow, and with the opt-in plans with the danger marked.
func TestDangers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ kind, role string }{
		{planner.DangerPrivileged, "options: {privileged: true}"},
		{planner.DangerHostNetwork, "options: {network: host}\n    proxy: false"},
		{planner.DangerHostPID, "options: {pid: host}"},
		{planner.DangerSocket, "options: {mount: 'type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock'}"},
		{planner.DangerHostMount, "options: {mount: 'type=bind,src=/etc,dst=/host-etc,readonly'}"},
		{planner.DangerCapAll, "options: {cap-add: ALL}"},
		{planner.DangerRootUser, "options: {user: \"0:0\"}"},
		{planner.DangerRootUser, "options: {user: root}"},
		{planner.DangerPublicPort, "options: {publish: \"0.0.0.0:22:22\"}"},
		{planner.DangerPublicPort, "options: {publish: \"5432:5432\"}"},
		{planner.DangerUnconfined, "options: {security-opt: seccomp=unconfined}"},
	} {
		t.Run(tc.kind+" "+tc.role, func(t *testing.T) {
			t.Parallel()
			file := "service: app\nimage: ghcr.io/a/b:1\nservers:\n  web:\n    hosts: [web-1]\n    " + tc.role + "\n"
			_, errs := planIn(t, map[string]string{"services/app.yml": file}, planner.Input{})
			require.Len(t, errs, 1, "%v", errs)
			require.Contains(t, errs[0].Msg, "is dangerous")
			require.Contains(t, errs[0].Msg, `add "`+tc.kind+`" to x-bosun.allow_dangerous`)
			require.Equal(t, 6, errs[0].Line, "reported at the option: %v", errs[0])

			plan, errs := planIn(t, map[string]string{"services/app.yml": file + "x-bosun: {allow_dangerous: [" + tc.kind + "]}\n"}, planner.Input{})
			require.Nil(t, errs)
			require.Len(t, plan.Changes, 1)
			ds := plan.Changes[0].Dangers
			require.Len(t, ds, 1)
			require.Equal(t, tc.kind, ds[0].Kind)
		})
	}
	t.Run("volumes", func(t *testing.T) {
		t.Parallel()
		for src, kind := range map[string]string{"/var/run/docker.sock": planner.DangerSocket, "/": "", "/root/.ssh": planner.DangerHostMount, "/etc": planner.DangerHostMount, "./.ssh": planner.DangerHostMount} {
			file := "service: app\nimage: ghcr.io/a/b:1\nservers: [web-1]\nvolumes: [\"" + src + ":/x\"]\n"
			_, errs := planIn(t, map[string]string{"services/app.yml": file}, planner.Input{})
			require.NotNil(t, errs, src)
			if kind != "" {
				require.ErrorContains(t, errs, `add "`+kind+`" to x-bosun.allow_dangerous`, src)
			}
		}
	})
	t.Run("not dangerous", func(t *testing.T) {
		t.Parallel()
		file := "service: app\nimage: ghcr.io/a/b:1\nservers:\n  web:\n    hosts: [web-1]\n    options: {publish: [\"127.0.0.1:5432:5432\", \"80:8080\"], user: \"1000:1000\", cap-add: NET_ADMIN}\nvolumes: [\"/srv/app:/data\", \"./storage:/s\"]\n"
		plan, errs := planIn(t, map[string]string{"services/app.yml": file}, planner.Input{})
		require.Nil(t, errs)
		require.Empty(t, plan.Changes[0].Dangers)
	})
	t.Run("unknown kind", func(t *testing.T) {
		t.Parallel()
		_, errs := planIn(t, map[string]string{"services/app.yml": svc("x-bosun: {allow_dangerous: [privilegd]}\n")}, planner.Input{})
		require.ErrorContains(t, errs, `(did you mean "privileged"?)`)
	})
}
