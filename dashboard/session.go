package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Sessions are signed cookies: the login, the role, the expiry and the
// session's CSRF token, as JSON, with an HMAC-SHA256 of it under a key
// derived from the store's secret key. Every replica on one store reads the
// others' sessions; nothing is stored per session. A session ends at its
// expiry or when its cookie is dropped (logout); a role change in
// bosun.yaml applies at the next login.

// SessionTTL is how long a login lasts.
const SessionTTL = 12 * time.Hour

const (
	sessionCookie = "bosun_session"
	oauthCookie   = "bosun_oauth" // the OAuth state and where to go after login
)

// session is the content of the session cookie.
type session struct {
	Login   string `json:"l"`
	Role    Role   `json:"r"`
	Expires int64  `json:"e"` // Unix seconds
	CSRF    string `json:"c"`
}

// signer signs and checks cookie values.
type signer struct{ key []byte }

// newSigner derives the cookie key from the store's secret key, for this
// one purpose.
func newSigner(secretKey []byte) signer {
	m := hmac.New(sha256.New, secretKey)
	m.Write([]byte("bosun dashboard cookies v1"))
	return signer{key: m.Sum(nil)}
}

func (s signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// sign returns "PAYLOAD.MAC", both base64url.
func (s signer) sign(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	p := base64.RawURLEncoding.EncodeToString(b)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac(p)), nil
}

var errBadCookie = errors.New("cookie not signed by this dashboard")

// open checks value's MAC and decodes its payload into v.
func (s signer) open(value string, v any) error {
	p, m, ok := strings.Cut(value, ".")
	if !ok {
		return errBadCookie
	}
	got, err := base64.RawURLEncoding.DecodeString(m)
	if err != nil || !hmac.Equal(got, s.mac(p)) {
		return errBadCookie
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return errBadCookie
	}
	return json.Unmarshal(b, v)
}

// randomString returns n random bytes, base64url.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cookie makes a cookie with the dashboard's attributes: HttpOnly,
// SameSite=Lax (the OAuth callback is a top-level navigation from the
// forge, which Strict would send without cookies), Secure under https.
func (s *Server) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.cfg.secureCookies()}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	return c
}

// readSession returns the request's valid session, if any.
func (s *Server) readSession(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	var sess session
	if s.signer.open(c.Value, &sess) != nil || !sess.Role.Valid() || sess.CSRF == "" || time.Now().Unix() >= sess.Expires {
		return session{}, false
	}
	return sess, true
}

// startSession sets the session cookie of a new login.
func (s *Server) startSession(w http.ResponseWriter, login string, role Role) error {
	v, err := s.signer.sign(session{Login: login, Role: role, Expires: time.Now().Add(SessionTTL).Unix(), CSRF: randomString(32)})
	if err != nil {
		return err
	}
	http.SetCookie(w, s.cookie(sessionCookie, v, SessionTTL))
	return nil
}

// validCSRF says whether the request carries the session's CSRF token, in
// the form field "csrf" or the header X-CSRF-Token.
func validCSRF(r *http.Request, sess session) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) == 1
}
