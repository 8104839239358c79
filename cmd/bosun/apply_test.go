package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/state"
)

// runCLIInput is runCLI with text on stdin.
func runCLIInput(t testing.TB, environ map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := env{getenv: func(k string) string { return environ[k] }, stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code := run(ctx, args, e)
	return code, out.String(), errb.String()
}

// TestCLI_applyOnTestServers drives the operator's commands against two
// test servers: apply (asked and --yes), status, history, rollback with its
// hold, plan of a held service, release, and the hold that ends once git
// asks for the held version.
func TestCLI_applyOnTestServers(t *testing.T) {
	if testing.Short() {
		t.Skip("needs test servers")
	}
	testbed.RequireDocker(t)
	bed := testbed.Start(t, testbed.Options{Servers: 2})
	v1 := bed.PushApp(t, "shop", "v1", testbed.AppOK)
	v2 := bed.PushApp(t, "shop", "v2", testbed.AppOK)
	environ := map[string]string{"BOSUN_PROXY_IMAGE": bed.PushProxy(t), "SHOP_KEY": "cli-secret-value-77", "USER": "ops"}

	fleet := "servers:\n"
	for _, s := range bed.Servers {
		host, port, _ := strings.Cut(s.SSHAddr, ":")
		fleet += fmt.Sprintf("  %s: {host: %s, port: %s}\n", s.Name, host, port)
	}
	service := func(image string) string {
		return "service: shop\nimage: " + image + "\nservers: [server-1, server-2]\nproxy: {host: shop.test}\nenv: {secret: [SHOP_KEY]}\ndrain_timeout: 1\n"
	}
	dir := t.TempDir()
	repo := filepath.Join(dir, "fleet")
	testbed.Commit(t, repo, "change", map[string]string{"fleet.yml": fleet, "services/shop.yml": service(v1)})
	common := []string{"--repo", repo, "--state", "sqlite:///" + filepath.Join(dir, "state.db"), "--ssh-key", bed.KeyPath, "--known-hosts", bed.KnownHostsPath}
	cli := func(stdin string, args ...string) (int, string) {
		t.Helper()
		code, out, errs := runCLIInput(t, environ, stdin, args...)
		if strings.Contains(out+errs, "cli-secret-value-77") {
			t.Fatalf("bosun %s printed a secret value", args[0])
		}
		return code, out + errs
	}
	servesEverywhere := func(version string) bool {
		for _, s := range bed.Servers {
			if !strings.Contains(serving(s.HTTPAddr, "shop.test"), version) {
				return false
			}
		}
		return true
	}

	// Asked, and answered no: nothing happens.
	code, out := cli("no\n", append([]string{"apply"}, common...)...)
	if code != 1 || !strings.Contains(out, "Nothing applied") {
		t.Fatalf("apply answered no: exit %d\n%s", code, out)
	}
	// Answered yes: v1 everywhere, with progress per host and step and a summary.
	code, out = cli("yes\n", append([]string{"apply"}, common...)...)
	if code != 0 {
		t.Fatalf("apply v1: exit %d\n%s", code, out)
	}
	for _, want := range []string{"create", "shop/web@server-1 pull", "shop/web@server-2 switch ok", "Applied: 1 service(s) on 2 host(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	if !servesEverywhere("v1") {
		t.Fatal("v1 does not serve after apply")
	}
	statusArgs := append([]string{"status"}, common[0], common[1], common[4], common[5], common[6], common[7])
	code, out = cli("", statusArgs...)
	if code != 0 || strings.Count(out, "running") != 2 {
		t.Fatalf("status: exit %d, want shop running on both servers:\n%s", code, out)
	}

	testbed.Commit(t, repo, "change", map[string]string{"services/shop.yml": service(v2)})
	if code, out = cli("", append([]string{"apply", "--yes"}, common...)...); code != 0 || !servesEverywhere("v2") {
		t.Fatalf("apply v2: exit %d\n%s", code, out)
	}
	code, out = cli("", "history", "--state", common[3])
	if code != 0 || strings.Count(out, "deployed") != 2 {
		t.Fatalf("history: exit %d, want two deployed rows:\n%s", code, out)
	}

	// The emergency way back: rollback puts v1 back and holds the service.
	code, out = cli("", append([]string{"rollback", "shop", "--yes"}, common...)...)
	if code != 0 || !servesEverywhere("v1") || !strings.Contains(out, "is held at") {
		t.Fatalf("rollback: exit %d\n%s", code, out)
	}
	code, out = cli("", append([]string{"plan"}, common[:4]...)...)
	if !strings.Contains(out, "held") {
		t.Errorf("plan of a held service does not say held (exit %d):\n%s", code, out)
	}
	if code, out = cli("", append([]string{"apply", "--yes"}, common...)...); code != 0 || !servesEverywhere("v1") {
		t.Fatalf("apply while held changed the service (exit %d):\n%s", code, out)
	}
	if code, out = cli("", "release", "shop", "--repo", repo, "--state", common[3]); code != 0 {
		t.Fatalf("release: exit %d\n%s", code, out)
	}
	if code, out = cli("", append([]string{"plan"}, common[:4]...)...); code != 2 {
		t.Errorf("plan after release: exit %d, want 2 (v2 to deploy again):\n%s", code, out)
	}
	// A hold by hand keeps v1 although git says v2.
	if code, out = cli("", "hold", "shop", "--repo", repo, "--state", common[3]); code != 0 || !strings.Contains(out, "is held at") {
		t.Fatalf("hold: exit %d\n%s", code, out)
	}
	if code, out = cli("", append([]string{"plan"}, common[:4]...)...); !strings.Contains(out, "held") {
		t.Errorf("plan after hold (exit %d) does not say held:\n%s", code, out)
	}
	if code, out = cli("", "release", "shop", "--name", "nope", "--state", common[3]); code != 1 || !strings.Contains(out, "never been applied") {
		t.Errorf("release from an unknown repository: exit %d\n%s", code, out)
	}
	// git catches up with the hold (v1 committed again): apply ends it, so
	// the next commit deploys.
	testbed.Commit(t, repo, "change", map[string]string{"services/shop.yml": service(v1)})
	if code, out = cli("", append([]string{"apply", "--yes"}, common...)...); code != 0 || !strings.Contains(out, "Hold on shop released") {
		t.Fatalf("apply of the held version: exit %d, want 0 and the hold released:\n%s", code, out)
	}
	testbed.Commit(t, repo, "change", map[string]string{"services/shop.yml": service(v2)})
	if code, out = cli("", append([]string{"plan"}, common[:4]...)...); code != 2 || !strings.Contains(out, " 0 held.") {
		t.Errorf("plan after the hold ended: exit %d, want 2 (v2 to deploy, nothing held):\n%s", code, out)
	}
	// Each action is recorded with the CLI user, for the dashboard's
	// History; the rollback's deployment names them too.
	st, err := state.Open(t.Context(), common[3])
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	as, err := st.ListActions(t.Context(), state.ActionFilter{Repo: "fleet"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range as {
		got = append(got, a.Actor+" "+a.Action+" "+a.Service)
	}
	if want := []string{"cli:ops hold shop", "cli:ops release shop", "cli:ops rollback shop"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("actions = %q, want %q (newest first)", got, want)
	}
	if ds, _ := st.ListDeployments(t.Context(), state.DeploymentFilter{Repo: "fleet"}); !slices.ContainsFunc(ds, func(d state.Deployment) bool { return d.Trigger == "bosun rollback by cli:ops" }) {
		t.Errorf("no deployment triggered by \"bosun rollback by cli:ops\": %+v", ds)
	}
}
