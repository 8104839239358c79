package dashboard

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// GitHub's OAuth web flow: /login sends the browser to the forge's
// authorize page with a random state (kept in a signed, short-lived
// cookie); the forge sends it back to /login/callback with a code, which
// bosun trades for a user token, reads the user, their organisations and
// their teams with it, and forgets it. The role comes from Config.Roles.

// oauthState is the content of the OAuth cookie.
type oauthState struct {
	State string `json:"s"`
	Next  string `json:"n"`
}

const oauthTTL = 10 * time.Minute

// login starts the flow.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if !s.cfg.OAuth() {
		s.page(w, r, http.StatusOK, "login", map[string]any{"NoOAuth": true})
		return
	}
	st := oauthState{State: randomString(24), Next: next}
	v, err := s.signer.sign(st)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, s.cookie(oauthCookie, v, oauthTTL))
	q := url.Values{
		"client_id":    {s.cfg.GitHub.ClientID},
		"redirect_uri": {s.callbackURL()},
		"scope":        {"read:org"},
		"state":        {st.State},
		"allow_signup": {"false"},
	}
	http.Redirect(w, r, s.cfg.webURL()+"/login/oauth/authorize?"+q.Encode(), http.StatusFound)
}

func (s *Server) callbackURL() string {
	return strings.TrimSuffix(s.cfg.BaseURL, "/") + "/login/callback"
}

// callback finishes the flow.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.OAuth() {
		http.NotFound(w, r)
		return
	}
	var st oauthState
	c, err := r.Cookie(oauthCookie)
	if err != nil || s.signer.open(c.Value, &st) != nil || st.State == "" ||
		subtle.ConstantTimeCompare([]byte(st.State), []byte(r.URL.Query().Get("state"))) != 1 {
		s.page(w, r, http.StatusBadRequest, "error", map[string]any{"Message": "The login could not be checked (its state is missing, expired or wrong). Start again from the login page."})
		return
	}
	http.SetCookie(w, s.cookie(oauthCookie, "", -1))
	if e := r.URL.Query().Get("error"); e != "" {
		s.page(w, r, http.StatusForbidden, "error", map[string]any{"Message": "GitHub refused the login: " + e})
		return
	}
	code := r.URL.Query().Get("code")
	if code == "" {
		s.page(w, r, http.StatusBadRequest, "error", map[string]any{"Message": "GitHub sent no code."})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	token, err := s.exchange(ctx, code)
	if err != nil {
		s.log.WarnContext(ctx, "login: code not exchanged", "err", err)
		s.page(w, r, http.StatusBadGateway, "error", map[string]any{"Message": "The login with GitHub failed; try again."})
		return
	}
	m, err := s.membership(ctx, token)
	if err != nil {
		s.log.WarnContext(ctx, "login: user not read", "err", err)
		s.page(w, r, http.StatusBadGateway, "error", map[string]any{"Message": "bosun could not read your GitHub user and teams; try again."})
		return
	}
	role := RoleOf(s.cfg.Roles, m)
	if role == None {
		s.log.InfoContext(ctx, "login refused: no role", "login", m.Login)
		s.page(w, r, http.StatusForbidden, "error", map[string]any{"Message": fmt.Sprintf("%s has no role on this dashboard: no rule of dashboard.roles names you, your organisations or your teams.", m.Login)})
		return
	}
	if err := s.startSession(w, m.Login, role); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.InfoContext(ctx, "login", "login", m.Login, "role", role.String())
	http.Redirect(w, r, st.Next, http.StatusSeeOther)
}

// exchange trades the code for a user token.
func (s *Server) exchange(ctx context.Context, code string) (string, error) {
	form := url.Values{
		"client_id":     {s.cfg.GitHub.ClientID},
		"client_secret": {s.clientSecret},
		"code":          {code},
		"redirect_uri":  {s.callbackURL()},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.webURL()+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := s.doJSON(req, &out); err != nil {
		return "", fmt.Errorf("token exchange: %w", err)
	}
	if out.Error != "" {
		return "", fmt.Errorf("token exchange: %s: %s", out.Error, out.Description)
	}
	if out.AccessToken == "" {
		return "", fmt.Errorf("token exchange: no access_token in the answer")
	}
	return out.AccessToken, nil
}

// membership reads the user of token, their organisations and teams.
func (s *Server) membership(ctx context.Context, token string) (Membership, error) {
	var user struct {
		Login string `json:"login"`
	}
	if err := s.api(ctx, token, "/user", &user); err != nil {
		return Membership{}, err
	}
	if user.Login == "" {
		return Membership{}, fmt.Errorf("GET /user: no login")
	}
	m := Membership{Login: user.Login}
	var orgs []struct {
		Login string `json:"login"`
	}
	if err := s.apiPages(ctx, token, "/user/orgs", func() any { orgs = nil; return &orgs }, func() int {
		for _, o := range orgs {
			m.Orgs = append(m.Orgs, o.Login)
		}
		return len(orgs)
	}); err != nil {
		return Membership{}, err
	}
	var teams []struct {
		Slug string `json:"slug"`
		Org  struct {
			Login string `json:"login"`
		} `json:"organization"`
	}
	if err := s.apiPages(ctx, token, "/user/teams", func() any { teams = nil; return &teams }, func() int {
		for _, t := range teams {
			m.Teams = append(m.Teams, t.Org.Login+"/"+t.Slug)
		}
		return len(teams)
	}); err != nil {
		return Membership{}, err
	}
	return m, nil
}

// maxPages bounds the pages of one list read at login (100 per page).
const maxPages = 10

// apiPages reads a list page by page: into gives a fresh target, took
// consumes it and says how many entries it had.
func (s *Server) apiPages(ctx context.Context, token, path string, into func() any, took func() int) error {
	for page := 1; page <= maxPages; page++ {
		if err := s.api(ctx, token, fmt.Sprintf("%s?per_page=100&page=%d", path, page), into()); err != nil {
			return err
		}
		if took() < 100 {
			return nil
		}
	}
	return nil
}

// api GETs path from the forge's API as the user of token.
func (s *Server) api(ctx context.Context, token, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.apiURL()+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	if err := s.doJSON(req, v); err != nil {
		return fmt.Errorf("GET %s: %w", strings.SplitN(path, "?", 2)[0], err)
	}
	return nil
}

// doJSON sends req and decodes a 2xx JSON answer into v.
func (s *Server) doJSON(req *http.Request, v any) error {
	resp, err := s.http.Do(req)
	if s.opts.ForgeCall != nil {
		s.opts.ForgeCall(resp, err)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	return json.Unmarshal(body, v)
}

// localPath returns p when it is a path on this host, or "/": the page to
// go to after login must not lead elsewhere.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsAny(p, "\r\n") {
		return "/"
	}
	return p
}
