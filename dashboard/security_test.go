package dashboard

import (
	"net/http"
	"strings"
	"testing"
)

// path fills a route's wildcards with plausible values.
func path(p string) string {
	p = strings.ReplaceAll(p, "{$}", "")
	r := strings.NewReplacer("{id}", "1", "{repo}", "fleet", "{server}", "server-01")
	return r.Replace(p)
}

// Every route of the router but the login flow refuses a request without
// login: 401 on the API, a redirect to the login page on pages. The list
// is the router's own.
func TestRoutes_requireLogin(t *testing.T) {
	b := newBed(t, sqliteDSN(t), nil)
	routes := b.s.Routes()
	var api, pages, public int
	for _, rt := range routes {
		switch rt.Access {
		case Public:
			public++
			continue
		case API:
			api++
		case Page:
			pages++
		}
		for _, token := range []string{"", "bosun_not-a-token", "ghp_wrongkind"} {
			code, h, body := do(t, browser(t, false), rt.Method, b.url+path(rt.Path), token, nil)
			switch {
			case rt.Access == API && token == "" && (code != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), "Bearer")):
				t.Errorf("%s %s without login: %d %q, want 401 with WWW-Authenticate: Bearer", rt.Method, rt.Path, code, body)
			case rt.Access == Page && token == "" && (code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login")):
				t.Errorf("%s %s without login: %d to %q, want a redirect to /login", rt.Method, rt.Path, code, h.Get("Location"))
			case token != "" && code != http.StatusUnauthorized:
				t.Errorf("%s %s with the bad token %q: %d, want 401", rt.Method, rt.Path, token, code)
			}
		}
	}
	if public != 3 || api < 5 || pages < 3 {
		t.Errorf("routes: %d public, %d API, %d pages; want the 2 login routes and the stylesheet public and the rest behind login: %+v", public, api, pages, routes)
	}
	// The public ones are the login flow and the stylesheet.
	for _, rt := range routes {
		if rt.Access == Public && !strings.HasPrefix(rt.Path, "/login") && rt.Path != "/static/style.css" {
			t.Errorf("%s %s is public", rt.Method, rt.Path)
		}
	}
}

// A form post with a session but without its CSRF token is refused, for
// every state-changing page route; a wrong token too; the right one passes.
func TestRoutes_csrf(t *testing.T) {
	b := newBed(t, sqliteDSN(t), nil)
	c, csrf := b.login(t, alice) // a deployer: the role is not what refuses
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	n := 0
	routes := b.s.Routes()
	// Log out last: it ends the session.
	for i, rt := range routes {
		if rt.Path == "/logout" {
			routes = append(append(routes[:i:i], routes[i+1:]...), rt)
			break
		}
	}
	for _, rt := range routes {
		if rt.Method == http.MethodGet || rt.Access != Page {
			continue
		}
		n++
		for name, form := range map[string]map[string]string{"missing": {}, "wrong": {"csrf": csrf[:len(csrf)-2] + "xx"}, "empty": {"csrf": ""}} {
			if code, _, body := do(t, c, rt.Method, b.url+path(rt.Path), "", form); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
				t.Errorf("%s %s with the CSRF token %s: %d %q, want 403", rt.Method, rt.Path, name, code, body)
			}
		}
		if code, _, body := do(t, c, rt.Method, b.url+path(rt.Path), "", map[string]string{"csrf": csrf}); code == http.StatusForbidden {
			t.Errorf("%s %s with the right CSRF token: 403 %q", rt.Method, rt.Path, body)
		}
	}
	if n < 2 {
		t.Errorf("only %d state-changing page routes", n)
	}
	// The header works as the form field does (for scripts holding a
	// session).
	c, csrf = b.login(t, alice)
	req, _ := http.NewRequest("POST", b.url+"/repos/fleet/sync", nil)
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusForbidden {
		t.Errorf("POST with X-CSRF-Token: 403")
	}
}

// A viewer (session or token) cannot use a deployer's route; public_read
// opens reads, never writes.
func TestRoutes_roles(t *testing.T) {
	b := newBed(t, sqliteDSN(t), nil)
	viewer, err := CreateToken(t.Context(), b.st, "ci", Viewer, "test")
	if err != nil {
		t.Fatal(err)
	}
	deployer, err := CreateToken(t.Context(), b.st, "bot", Deployer, "test")
	if err != nil {
		t.Fatal(err)
	}
	c, csrf := b.login(t, bob) // a viewer
	for _, rt := range b.s.Routes() {
		if rt.Role < Deployer {
			continue
		}
		if code, _, _ := do(t, browser(t, false), rt.Method, b.url+path(rt.Path), viewer, nil); code != http.StatusForbidden {
			t.Errorf("%s %s with a viewer token: %d, want 403", rt.Method, rt.Path, code)
		}
		if code, _, _ := do(t, c, rt.Method, b.url+path(rt.Path), "", map[string]string{"csrf": csrf}); code != http.StatusForbidden {
			t.Errorf("%s %s as a viewer with the CSRF token: %d, want 403", rt.Method, rt.Path, code)
		}
		// A deployer's token passes the check (this dashboard has no
		// daemon and no applied state: the handler answers 503 or 404).
		if code, _, body := do(t, browser(t, false), rt.Method, b.url+path(rt.Path), deployer, nil); code != http.StatusServiceUnavailable && code != http.StatusNotFound {
			t.Errorf("%s %s with a deployer token: %d %q, want it let through (503: no daemon, or 404)", rt.Method, rt.Path, code, body)
		}
	}
	if code, _, body := do(t, browser(t, false), "GET", b.url+"/metrics", viewer, nil); code != http.StatusOK || body != "metrics\n" {
		t.Errorf("GET /metrics with a viewer token: %d %q", code, body)
	}

	pub := newBed(t, sqliteDSN(t), func(c *Config) { c.PublicRead = true })
	for _, rt := range pub.s.Routes() {
		if rt.Access == Public {
			continue
		}
		code, h, _ := do(t, browser(t, false), rt.Method, pub.url+path(rt.Path), "", nil)
		switch {
		case rt.Method == "GET" && rt.Role <= Viewer && code != http.StatusOK && code != http.StatusNotFound:
			t.Errorf("public_read: GET %s without login: %d, want it readable", rt.Path, code)
		case rt.Method == "GET" && rt.Role > Viewer && code != http.StatusForbidden:
			t.Errorf("public_read: GET %s (a %s's page) without login: %d, want 403", rt.Path, rt.Role, code)
		case rt.Method != "GET" && code != http.StatusUnauthorized && code != http.StatusSeeOther:
			t.Errorf("public_read: %s %s without login: %d (Location %q), want 401 or a redirect to login", rt.Method, rt.Path, code, h.Get("Location"))
		}
	}
	if _, _, body := do(t, browser(t, false), "GET", pub.url+"/api/v1/whoami", "", nil); decode[Whoami](t, body) != (Whoami{Actor: "anonymous", Role: Viewer}) {
		t.Errorf("public_read whoami = %s", body)
	}
}
