package webhook

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-github/v66/github"
)

// AppTransport authenticates requests as a GitHub App installation: it signs
// a short-lived JWT with the App's private key, exchanges it for an
// installation token, caches that token until shortly before it expires,
// and sets it on every request.
type AppTransport struct {
	AppID          int64
	InstallationID int64
	Key            *rsa.PrivateKey
	BaseURL        string            // API root, as for the client; "" means https://api.github.com/
	Base           http.RoundTripper // nil means http.DefaultTransport

	mu      sync.Mutex
	token   string
	expires time.Time
}

// ParseAppKey reads a GitHub App's PEM private key (PKCS#1 or PKCS#8).
func ParseAppKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("GitHub App key: no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("GitHub App key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("GitHub App key: not an RSA key")
	}
	return rk, nil
}

// RoundTrip sets the installation token and sends the request.
func (t *AppTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.installationToken(req.Context())
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "token "+tok)
	return t.base().RoundTrip(req)
}

func (t *AppTransport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *AppTransport) installationToken(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && time.Until(t.expires) > time.Minute {
		return t.token, nil
	}
	client, err := t.appClient()
	if err != nil {
		return "", err
	}
	tok, _, err := client.Apps.CreateInstallationToken(ctx, t.InstallationID, nil)
	if err != nil {
		return "", fmt.Errorf("GitHub App installation token: %w", err)
	}
	t.token, t.expires = tok.GetToken(), tok.GetExpiresAt().Time
	return t.token, nil
}

// BotLogin is the login the App's installation posts as: its slug with
// "[bot]" appended, from GET /app (authenticated as the App). Pass it as
// ReporterConfig.Self: an installation token cannot call GET /user.
func (t *AppTransport) BotLogin(ctx context.Context) (string, error) {
	client, err := t.appClient()
	if err != nil {
		return "", err
	}
	app, _, err := client.Apps.Get(ctx, "")
	if err != nil {
		return "", fmt.Errorf("GitHub App: %w", err)
	}
	if app.GetSlug() == "" {
		return "", errors.New("GitHub App: no slug in GET /app")
	}
	return app.GetSlug() + "[bot]", nil
}

// appClient is a client authenticated as the App itself (a fresh JWT).
func (t *AppTransport) appClient() (*github.Client, error) {
	jwt, err := t.jwt(time.Now())
	if err != nil {
		return nil, err
	}
	client := github.NewClient(&http.Client{Transport: bearer{jwt, t.base()}})
	if t.BaseURL != "" {
		if client, err = client.WithEnterpriseURLs(t.BaseURL, t.BaseURL); err != nil {
			return nil, err
		}
	}
	return client, nil
}

// jwt makes the App's RS256 JSON Web Token, valid for nine minutes (GitHub
// allows ten) and backdated a minute for clock drift.
func (t *AppTransport) jwt(now time.Time) (string, error) {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{
		"iat": now.Add(-time.Minute).Unix(),
		"exp": now.Add(9 * time.Minute).Unix(),
		"iss": strconv.FormatInt(t.AppID, 10),
	})
	signing := header + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, t.Key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign GitHub App JWT: %w", err)
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(req)
}
