package dashboard

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/state"
)

const (
	clientID     = "Iv1.test-client"
	clientSecret = "test-client-secret"
)

// rules are the role rules of the tests: acme's members view, its ops
// team deploys, root administers.
var rules = []RoleRule{
	{Org: "acme", Role: Viewer},
	{Org: "acme", Team: "ops", Role: Deployer},
	{User: "root", Role: Admin},
}

// bed is a dashboard on a real store, served over HTTP, logging in through
// the fake GitHub (GitHub Enterprise URLs).
type bed struct {
	s   *Server
	st  state.Store
	gh  *testbed.FakeGitHub
	url string
}

func sqliteDSN(t *testing.T) string { return "sqlite:///" + filepath.Join(t.TempDir(), "state.db") }

// newBed starts a dashboard on the store at dsn; edit changes its config
// (whose base URL is the server's).
func newBed(t *testing.T, dsn string, edit func(*Config)) *bed {
	t.Helper()
	return newBedWith(t, dsn, edit, nil)
}

// newBedWith is newBed whose Options more may change (a Daemon, Changes),
// knowing the fake GitHub.
func newBedWith(t *testing.T, dsn string, edit func(*Config), more func(*Options, *testbed.FakeGitHub)) *bed {
	t.Helper()
	st, err := state.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := st.SecretKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gh := testbed.NewFakeGitHub(t)
	gh.SetOAuthApp(clientID, clientSecret)
	b := &bed{st: st, gh: gh}
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	b.url = srv.URL
	cfg := Config{BaseURL: srv.URL, GitHub: GitHubConfig{ClientID: clientID, ClientSecretEnv: "X", WebURL: gh.WebURL(), APIURL: gh.BaseURL()}, Roles: rules}
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	opts := Options{Config: cfg, ClientSecret: clientSecret, SecretKey: key, Store: st, Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics\n") })}
	if more != nil {
		more(&opts, gh)
	}
	b.s, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h = b.s
	return b
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects unless follow is set.
func browser(t *testing.T, follow bool) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

// login logs u in through the OAuth flow and returns the browser with the
// session and the session's CSRF token.
func (b *bed) login(t *testing.T, u testbed.OAuthUser) (*http.Client, string) {
	t.Helper()
	b.gh.LoginAs(u)
	c := browser(t, true)
	resp, err := c.Get(b.url + "/login?next=/api/v1/whoami")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/api/v1/whoami" {
		t.Fatalf("login of %s ended at %s with %d: %s", u.Login, resp.Request.URL, resp.StatusCode, body)
	}
	sess := b.sessionOf(t, c)
	return c, sess.CSRF
}

// sessionOf reads the browser's session cookie as the server would.
func (b *bed) sessionOf(t *testing.T, c *http.Client) session {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.url+"/", nil)
	for _, ck := range c.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	sess, ok := b.s.readSession(req)
	if !ok {
		t.Fatalf("no valid session cookie in the browser")
	}
	return sess
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// do sends a request with an optional bearer token and form.
func do(t *testing.T, c *http.Client, method, url, token string, form map[string]string) (int, http.Header, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		var parts []string
		for k, v := range form {
			parts = append(parts, k+"="+v)
		}
		body = strings.NewReader(strings.Join(parts, "&"))
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, readAll(t, resp)
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}
