package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ClientConfig says how to reach a proxy's control API.
type ClientConfig struct {
	Addr  string // HOST:PORT of the control API as seen from DialFunc, e.g. "127.0.0.1:7080", or unix:PATH
	Token string // bearer token

	// DialFunc opens the connection; nil means a net.Dialer. The executor
	// passes its SSH client's Dial, so Addr is resolved on the server.
	DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)
	// Transport, if set, is used as is and DialFunc is ignored.
	Transport http.RoundTripper
}

// Client calls a proxy's control API. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// APIError is an error answer of the control API.
type APIError struct {
	Status  int    // HTTP status
	Message string // the proxy's "error" field
}

func (e *APIError) Error() string {
	return fmt.Sprintf("proxy answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Is lets errors.Is match an APIError against ErrUnhealthy, ErrConflict
// and ErrNotFound by its status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnhealthy:
		return e.Status == http.StatusGatewayTimeout
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	}
	return false
}

// NewClient makes a client. It does not connect.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("proxy client: no control address")
	}
	if cfg.Token == "" {
		return nil, errors.New("proxy client: no control token")
	}
	addr := strings.TrimPrefix(strings.TrimPrefix(cfg.Addr, "http://"), "https://")
	sock, isUnix := strings.CutPrefix(cfg.Addr, "unix:")
	if isUnix {
		addr = "bosun-proxy" // the Host header; the socket is the address
	}
	rt := cfg.Transport
	if rt == nil {
		dial := cfg.DialFunc
		if dial == nil {
			dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
		}
		if isUnix {
			tcpDial := dial
			dial = func(ctx context.Context, _, _ string) (net.Conn, error) { return tcpDial(ctx, "unix", sock) }
		}
		rt = &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	}
	return &Client{base: "http://" + addr, token: cfg.Token, hc: &http.Client{Transport: rt}}, nil
}

// Deploy asks the proxy to switch req.Service to req.Target and waits for
// the answer: nil once the target is healthy and serving and the old one
// has drained. On an error the route is as it was before the call, unless
// ctx ended after the proxy had switched. Give ctx at least
// DeployTimeout+DrainTimeout.
func (c *Client) Deploy(ctx context.Context, req DeployRequest) (Route, error) {
	var r Route
	body, err := json.Marshal(req)
	if err != nil {
		return r, err
	}
	err = c.do(ctx, http.MethodPost, "/v1/deploy", body, &r)
	if err != nil {
		return r, fmt.Errorf("deploy %s to %s: %w", req.Service, req.Target, err)
	}
	return r, nil
}

// Remove deletes the service's route and waits until its target drained.
func (c *Client) Remove(ctx context.Context, service string) error {
	if err := c.do(ctx, http.MethodDelete, "/v1/routes/"+url.PathEscape(service), nil, nil); err != nil {
		return fmt.Errorf("remove route %s: %w", service, err)
	}
	return nil
}

// List returns the routes, sorted by service.
func (c *Client) List(ctx context.Context) ([]Route, error) {
	var out struct {
		Routes []Route `json:"routes"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/routes", nil, &out); err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return out.Routes, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}
