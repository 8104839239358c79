package webhook

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-github/v66/github"
)

// DefaultRequestTimeout bounds one call to the forge unless
// GitHubConfig.Timeout says otherwise.
const DefaultRequestTimeout = 30 * time.Second

// GitHubConfig says how bosun reaches GitHub's API (or GitHub Enterprise's;
// no other forge): with a token, or as a GitHub App installation.
type GitHubConfig struct {
	// BaseURL is the API root; "" or https://api.github.com/ is github.com.
	BaseURL string
	// Token authenticates every request unless AppID is set.
	Token string
	// AppID, InstallationID and AppKey authenticate as a GitHub App
	// installation (see AppTransport).
	AppID, InstallationID int64
	AppKey                *rsa.PrivateKey
	Timeout               time.Duration // per request; 0 means DefaultRequestTimeout
	// Observe, when set, is told of every call's answer or error (for
	// metrics); it must not keep or read the response.
	Observe func(*http.Response, error)
}

// NewGitHubReporter returns a Reporter that posts through GitHub's API as
// gc says. For a GitHub App, rc.Self (when nil) becomes the App's bot login.
func NewGitHubReporter(gc GitHubConfig, rc ReporterConfig) (*Reporter, error) {
	timeout := gc.Timeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	var tr http.RoundTripper
	switch {
	case gc.AppID != 0:
		if gc.AppKey == nil {
			return nil, errors.New("GitHub App: no private key")
		}
		app := &AppTransport{AppID: gc.AppID, InstallationID: gc.InstallationID, Key: gc.AppKey, BaseURL: gc.BaseURL}
		if rc.Self == nil {
			rc.Self = app.BotLogin
		}
		tr = app
	case gc.Token != "":
		tr = tokenTransport{token: gc.Token}
	default:
		return nil, errors.New("GitHub: neither a token nor an App")
	}
	if gc.Observe != nil {
		tr = observed{next: tr, observe: gc.Observe}
	}
	client := github.NewClient(&http.Client{Transport: tr, Timeout: timeout})
	if gc.BaseURL != "" && gc.BaseURL != "https://api.github.com/" {
		var err error
		if client, err = client.WithEnterpriseURLs(gc.BaseURL, gc.BaseURL); err != nil {
			return nil, fmt.Errorf("base URL %s: %w", gc.BaseURL, err)
		}
	}
	return NewReporter(rc, client), nil
}

// tokenTransport sets a token on every request.
type tokenTransport struct{ token string }

func (t tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "token "+t.token)
	return http.DefaultTransport.RoundTrip(req)
}

// observed tells observe of each round trip's outcome.
type observed struct {
	next    http.RoundTripper
	observe func(*http.Response, error)
}

func (o observed) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	o.observe(resp, err)
	return resp, err
}
