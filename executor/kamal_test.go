package executor

import (
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
)

// TestApply_KamalPaths deploys a Kamal accessory with a relative directory
// as a non-root SSH user: the data must land in
// $HOME/<service>-<accessory>/<dir> of that user, where Kamal keeps it, and
// an app container must reach the accessory by Kamal's name
// (<service>-<accessory>) on the bosun network.
func TestApply_KamalPaths(t *testing.T) {
	en := newBedEnv(t, 1)
	s := en.bed.Servers[0]
	// A deploy user in the docker group, with its home in an unusual
	// place: bosun must ask the server, not assume /root or /home/USER.
	s.Exec(t, "useradd", "--create-home", "--home-dir", "/srv/people/deploy", "--groups", "docker", "--shell", "/bin/sh", "deploy")
	s.Exec(t, "usermod", "--password", "*", "deploy") // no password, but not locked: sshd refuses locked accounts
	s.Exec(t, "sh", "-c", "mkdir -p /srv/people/deploy/.ssh && cp /root/.ssh/authorized_keys /srv/people/deploy/.ssh/ && chown -R deploy /srv/people/deploy/.ssh && chmod 700 /srv/people/deploy/.ssh")
	h := en.hosts[s.Name]
	h.User = "deploy"
	en.hosts[s.Name] = h

	// What the planner makes of accessories.db.directories: [data:/data].
	dbRef := en.bed.PushApp(t, "shop-db", "db1", testbed.AppOK)
	db := &planner.Spec{
		Service: "shop-db", Role: planner.AccessoryRole, Image: dbRef,
		Env:      map[string]string{"WRITE_FILE": "/data/marker"},
		Volumes:  []planner.Volume{{Source: planner.HomePrefix + "shop-db/data", Target: "/data"}},
		Stateful: true, DeployTimeout: planner.Duration(10 * time.Second), DrainTimeout: planner.Duration(time.Second),
		ReadinessDelay: planner.Duration(300 * time.Millisecond),
	}
	en.mustApply(en.plan(db, planner.Service{}))
	if got := strings.TrimSpace(s.Exec(t, "cat", "/srv/people/deploy/shop-db/data/marker")); got != "db1" {
		t.Fatalf("marker in the deploy user's ~/shop-db/data = %q, want db1", got)
	}
	// The applied record says how the host was reached, so that a changed
	// address or user in fleet.yml is a plan change.
	rec, _ := en.appliedRecord("shop-db", planner.AccessoryRole, s.Name)
	if _, conn, err := decodeApplied(rec.Spec, s.Name); err != nil || conn == nil || conn.User != "deploy" || conn.Address != h.Address || conn.Port != h.Port {
		t.Errorf("applied connection = %+v, %v; want deploy@%s:%d", conn, err, h.Address, h.Port)
	}
	if out := s.Exec(t, "sh", "-c", "ls /root/shop-db 2>&1 || true"); !strings.Contains(out, "No such file") {
		t.Errorf("something was made in root's home: %s", out)
	}

	// The app is healthy only when its health check reaches shop-db by name.
	appRef := en.bed.PushApp(t, "shop", "a1", testbed.AppOK)
	app := &planner.Spec{
		Service: "shop", Role: "web", Image: appRef,
		Health: planner.Health{Cmd: []string{"CMD", "/sampleapp", "check", "http://shop-db/up"},
			Interval: planner.Duration(200 * time.Millisecond), Timeout: planner.Duration(2 * time.Second), Retries: 3},
		DeployTimeout: planner.Duration(20 * time.Second), DrainTimeout: planner.Duration(time.Second),
		ReadinessDelay: planner.Duration(300 * time.Millisecond),
	}
	en.mustApply(en.plan(app, planner.Service{}))
	name := containerName("shop", "web", app.Version())
	// Roles stay reachable as <service>-<role>, accessories as both.
	for _, target := range []string{"http://shop-db/up", "http://shop-db-accessory/up"} {
		if _, err := s.Run(t.Context(), "docker", "exec", name, "/sampleapp", "check", target); err != nil {
			t.Errorf("the app cannot reach %s: %v", target, err)
		}
	}
	dbName := containerName("shop-db", planner.AccessoryRole, db.Version())
	if _, err := s.Run(t.Context(), "docker", "exec", dbName, "/sampleapp", "check", "http://shop-web/up"); err != nil {
		t.Errorf("the accessory cannot reach the app as shop-web: %v", err)
	}
}
