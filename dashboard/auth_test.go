package dashboard

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
)

var (
	alice = testbed.OAuthUser{Login: "alice", Orgs: []string{"acme"}, Teams: []string{"acme/ops"}}
	bob   = testbed.OAuthUser{Login: "bob", Orgs: []string{"acme"}, Teams: []string{"acme/design"}}
	root  = testbed.OAuthUser{Login: "root"}
	eve   = testbed.OAuthUser{Login: "eve", Orgs: []string{"evil"}, Teams: []string{"evil/ops"}}
)

func TestLogin_rolesFromMembership(t *testing.T) {
	b := newBed(t, sqliteDSN(t), nil)
	for _, c := range []struct {
		u    testbed.OAuthUser
		want Role
	}{{alice, Deployer}, {bob, Viewer}, {root, Admin}} {
		cl, csrf := b.login(t, c.u)
		_, _, body := do(t, cl, "GET", b.url+"/api/v1/whoami", "", nil)
		w := decode[Whoami](t, body)
		if w.Actor != "github:"+c.u.Login || w.Role != c.want {
			t.Errorf("%s: whoami = %+v, want github:%s with role %s", c.u.Login, w, c.u.Login, c.want)
		}
		if len(csrf) < 40 {
			t.Errorf("%s: CSRF token %q is too short", c.u.Login, csrf)
		}
	}
	// The authorize request: the app, the callback under base_url, the
	// scope that lists private memberships, a state.
	calls := b.gh.AuthorizeCalls()
	if len(calls) != 3 {
		t.Fatalf("authorize calls = %d, want 3", len(calls))
	}
	q := calls[0]
	if q.Get("client_id") != clientID || q.Get("redirect_uri") != b.url+"/login/callback" || q.Get("scope") != "read:org" || len(q.Get("state")) < 24 {
		t.Errorf("authorize query = %v", q)
	}
	if calls[0].Get("state") == calls[1].Get("state") {
		t.Errorf("two logins used the same state %q", calls[0].Get("state"))
	}
}

func TestLogin_refused(t *testing.T) {
	b := newBed(t, sqliteDSN(t), nil)

	// A user no rule names gets no session.
	b.gh.LoginAs(eve)
	c := browser(t, true)
	resp, err := c.Get(b.url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "eve has no role") {
		t.Errorf("login of eve: %d %q, want 403 saying eve has no role", resp.StatusCode, body)
	}
	u, _ := url.Parse(b.url)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			t.Errorf("eve got a session cookie")
		}
	}

	// A callback whose state is not the browser's is refused, before
	// any code is exchanged.
	b.gh.LoginAs(alice)
	c = browser(t, false)
	resp, err = c.Get(b.url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authorize, _ := url.Parse(resp.Header.Get("Location"))
	resp, err = c.Get(authorize.String()) // the fake answers with the redirect back
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ := url.Parse(resp.Header.Get("Location"))
	q := back.Query()
	q.Set("state", "forged")
	back.RawQuery = q.Encode()
	if code, _, body := do(t, c, "GET", back.String(), "", nil); code != http.StatusBadRequest || !strings.Contains(body, "state") {
		t.Errorf("callback with a forged state: %d %q, want 400", code, body)
	}
	// Another browser (no state cookie) with the right state: refused too.
	if code, _, _ := do(t, browser(t, false), "GET", back.String()+"&state="+authorize.Query().Get("state"), "", nil); code != http.StatusBadRequest {
		t.Errorf("callback without the state cookie: %d, want 400", code)
	}

	// A wrong client secret: the exchange fails, no session.
	b2 := newBed(t, sqliteDSN(t), nil)
	b2.s.clientSecret = "wrong"
	b2.gh.LoginAs(alice)
	resp, err = browser(t, true).Get(b2.url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("login with a wrong client secret: %d %q, want 502", resp.StatusCode, body)
	}
}

func TestLogin_nextStaysLocal(t *testing.T) {
	for in, want := range map[string]string{
		"/api/v1/deployments?repo=x": "/api/v1/deployments?repo=x",
		"//evil.example.com/":        "/",
		"/\\evil.example.com":        "/",
		"https://evil.example.com/":  "/",
		"":                           "/",
		"/x\r\nSet-Cookie: a=b":      "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSession_cookie(t *testing.T) {
	b := newBed(t, sqliteDSN(t), nil)
	u, _ := url.Parse(b.url)
	// The Set-Cookie attributes, read from a fresh login's answer.
	rec := &headerRecorder{h: http.Header{}}
	if err := b.s.startSession(rec, "alice", Deployer); err != nil {
		t.Fatal(err)
	}
	ck, err := http.ParseSetCookie(rec.h.Get("Set-Cookie"))
	if err != nil {
		t.Fatal(err)
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/" || ck.MaxAge != int(SessionTTL/time.Second) {
		t.Errorf("session cookie on an http base URL = %+v, want HttpOnly, SameSite=Lax, not Secure, Path /, Max-Age 12h", ck)
	}
	b.s.cfg.BaseURL = "https://bosun.example.com"
	if ck := b.s.cookie(sessionCookie, "v", time.Hour); !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
		t.Errorf("session cookie on an https base URL = %+v, want Secure", ck)
	}
	b.s.cfg.BaseURL = u.String()

	// A cookie that was changed, signed with another key, or expired is
	// no session: pages send to login.
	good, _ := b.s.signer.sign(session{Login: "alice", Role: Viewer, Expires: time.Now().Add(time.Hour).Unix(), CSRF: "c"})
	admin, _ := b.s.signer.sign(session{Login: "alice", Role: Admin, Expires: time.Now().Add(time.Hour).Unix(), CSRF: "c"})
	tampered := strings.SplitN(admin, ".", 2)[0] + "." + strings.SplitN(good, ".", 2)[1]
	other := newSigner([]byte("another store's key, 32 bytes.."))
	foreign, _ := other.sign(session{Login: "alice", Role: Admin, Expires: time.Now().Add(time.Hour).Unix(), CSRF: "c"})
	expired, _ := b.s.signer.sign(session{Login: "alice", Role: Viewer, Expires: time.Now().Add(-time.Second).Unix(), CSRF: "c"})
	for name, v := range map[string]string{"good": good, "tampered": tampered, "foreign": foreign, "expired": expired} {
		req, _ := http.NewRequest("GET", b.url+"/", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: v})
		resp, err := browser(t, false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		wantOK := name == "good"
		if got := resp.StatusCode == http.StatusOK; got != wantOK {
			t.Errorf("%s cookie: GET / = %d (Location %q); want 200 only for the good one, else a redirect to login", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	// Logout drops the cookie.
	c, csrf := b.login(t, bob)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if code, h, _ := do(t, c, "POST", b.url+"/logout", "", map[string]string{"csrf": csrf}); code != http.StatusSeeOther || h.Get("Location") != "/login" {
		t.Errorf("logout: %d to %q, want a redirect to /login", code, h.Get("Location"))
	}
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			t.Errorf("session cookie kept after logout")
		}
	}
}

type headerRecorder struct{ h http.Header }

func (r *headerRecorder) Header() http.Header         { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(int)             {}
