package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/go-github/v66/github"
)

// The fake's OAuth web flow, as GitHub Enterprise serves it: the login
// pages at the server's root (/login/oauth/authorize,
// /login/oauth/access_token), the API under /api/v3/ (GET /user,
// /user/orgs, /user/teams answer for the user a token was issued to).
// Register the OAuth App with SetOAuthApp and say who logs in next with
// LoginAs; the authorize page then redirects straight back with a code, as
// GitHub does for a user who authorized the app before.

// OAuthUser is a user who logs in through the fake.
type OAuthUser struct {
	Login string
	Orgs  []string // organisation logins
	Teams []string // "org/slug"
}

type fakeOAuth struct {
	clientID, clientSecret string
	next                   *OAuthUser
	codes                  map[string]oauthGrant // code -> grant, used once
	tokens                 map[string]OAuthUser  // access token -> user
	authorizeCalls         []url.Values
}

type oauthGrant struct {
	user        OAuthUser
	redirectURI string
}

// SetOAuthApp registers the OAuth App that may log users in.
func (f *FakeGitHub) SetOAuthApp(clientID, clientSecret string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.oauth.clientID, f.oauth.clientSecret = clientID, clientSecret
}

// LoginAs makes u the user of the next authorizations.
func (f *FakeGitHub) LoginAs(u OAuthUser) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.oauth.next = &u
}

// WebURL is the fake's web root (where the login pages are).
func (f *FakeGitHub) WebURL() string { return f.Server.URL }

// AuthorizeCalls returns the query of every authorize request.
func (f *FakeGitHub) AuthorizeCalls() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.oauth.authorizeCalls...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// oauthUser is the user of the request's OAuth token, if it has one.
func (f *FakeGitHub) oauthUser(r *http.Request) (OAuthUser, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return OAuthUser{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.oauth.tokens[tok]
	return u, ok
}

func (f *FakeGitHub) oauthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.oauth.authorizeCalls = append(f.oauth.authorizeCalls, q)
		if f.oauth.clientID == "" || q.Get("client_id") != f.oauth.clientID {
			http.Error(w, "unknown client_id", http.StatusNotFound)
			return
		}
		redirect, err := url.Parse(q.Get("redirect_uri"))
		if err != nil || redirect.Scheme == "" {
			http.Error(w, "bad redirect_uri", http.StatusBadRequest)
			return
		}
		back := redirect.Query()
		back.Set("state", q.Get("state"))
		if f.oauth.next == nil {
			back.Set("error", "access_denied")
		} else {
			code := randomHex(10)
			if f.oauth.codes == nil {
				f.oauth.codes = map[string]oauthGrant{}
			}
			f.oauth.codes[code] = oauthGrant{user: *f.oauth.next, redirectURI: q.Get("redirect_uri")}
			back.Set("code", code)
		}
		redirect.RawQuery = back.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		f.mu.Lock()
		defer f.mu.Unlock()
		answer := func(v map[string]string) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(v)
		}
		if r.PostFormValue("client_id") != f.oauth.clientID || r.PostFormValue("client_secret") != f.oauth.clientSecret {
			answer(map[string]string{"error": "incorrect_client_credentials", "error_description": "The client_id and/or client_secret passed are incorrect."})
			return
		}
		g, ok := f.oauth.codes[r.PostFormValue("code")]
		delete(f.oauth.codes, r.PostFormValue("code"))
		if !ok || r.PostFormValue("redirect_uri") != g.redirectURI {
			answer(map[string]string{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
			return
		}
		tok := "gho_" + randomHex(18)
		if f.oauth.tokens == nil {
			f.oauth.tokens = map[string]OAuthUser{}
		}
		f.oauth.tokens[tok] = g.user
		answer(map[string]string{"access_token": tok, "token_type": "bearer", "scope": "read:org"})
	})
	page := func(r *http.Request, n int) (from, to int) {
		per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		if per <= 0 {
			per = 30
		}
		p, _ := strconv.Atoi(r.URL.Query().Get("page"))
		p = max(p, 1)
		return min((p-1)*per, n), min(p*per, n)
	}
	mux.HandleFunc("GET /api/v3/user/orgs", func(w http.ResponseWriter, r *http.Request) {
		u, ok := f.oauthUser(r)
		if !ok {
			http.Error(w, `{"message":"Requires authentication"}`, http.StatusUnauthorized)
			return
		}
		out := []*github.Organization{}
		from, to := page(r, len(u.Orgs))
		for _, o := range u.Orgs[from:to] {
			out = append(out, &github.Organization{Login: github.String(o)})
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /api/v3/user/teams", func(w http.ResponseWriter, r *http.Request) {
		u, ok := f.oauthUser(r)
		if !ok {
			http.Error(w, `{"message":"Requires authentication"}`, http.StatusUnauthorized)
			return
		}
		out := []*github.Team{}
		from, to := page(r, len(u.Teams))
		for _, t := range u.Teams[from:to] {
			org, slug, _ := strings.Cut(t, "/")
			out = append(out, &github.Team{Slug: github.String(slug), Name: github.String(slug), Organization: &github.Organization{Login: github.String(org)}})
		}
		json.NewEncoder(w).Encode(out)
	})
}
