package webhook

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

var testSecret = []byte("webhook-secret")

// recorder is an EnqueueFunc that records what it was handed.
type recorder struct {
	mu     sync.Mutex
	events []Event
	err    error
}

func (r *recorder) enqueue(_ context.Context, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.events = append(r.events, ev)
	return nil
}

func payload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/github/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deliver posts body as a GitHub delivery, signed with secret unless
// signature is given ("" means sign; "-" means send none).
func deliver(h http.Handler, event, id string, body []byte, signature string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	switch signature {
	case "":
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(Sign(testSecret, body)))
	case "-":
	default:
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestHandler_ServeHTTP(t *testing.T) {
	push := payload(t, "push.json")
	wrongSig := "sha256=" + hex.EncodeToString(Sign([]byte("other-secret"), push))
	for _, tc := range []struct {
		name, event, signature string
		body                   []byte
		want                   int
		enqueued               int
	}{
		{"push accepted", "push", "", push, http.StatusAccepted, 1},
		{"pull request accepted", "pull_request", "", payload(t, "pull_request_opened.json"), http.StatusAccepted, 1},
		{"ping answered", "ping", "", payload(t, "ping.json"), http.StatusOK, 0},
		{"unknown event ignored", "issues", "", payload(t, "issues.json"), http.StatusAccepted, 0},
		{"no signature", "push", "-", push, http.StatusUnauthorized, 0},
		{"wrong signature", "push", wrongSig, push, http.StatusUnauthorized, 0},
		{"sha1-style signature", "push", "sha1=" + hex.EncodeToString(Sign(testSecret, push)), push, http.StatusUnauthorized, 0},
		{"signature not hex", "push", "sha256=zz", push, http.StatusUnauthorized, 0},
		{"truncated JSON", "push", "", push[:len(push)/2], http.StatusBadRequest, 0},
		{"JSON without a repository", "push", "", []byte(`{"ref":"refs/heads/main"}`), http.StatusBadRequest, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			h := NewHandler(Config{Secret: testSecret}, rec.enqueue)
			w := deliver(h, tc.event, "d-1", tc.body, tc.signature)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d; body %q", w.Code, tc.want, w.Body.String())
			}
			if len(rec.events) != tc.enqueued {
				t.Fatalf("enqueued %d events, want %d", len(rec.events), tc.enqueued)
			}
		})
	}
}

func TestHandler_decodesEvents(t *testing.T) {
	var rec recorder
	h := NewHandler(Config{Secret: testSecret}, rec.enqueue)
	deliver(h, "push", "d-push", payload(t, "push.json"), "")
	deliver(h, "pull_request", "d-pr", payload(t, "pull_request_opened.json"), "")
	if len(rec.events) != 2 {
		t.Fatalf("got %d events", len(rec.events))
	}
	p, pr := rec.events[0], rec.events[1]
	if p.Kind != KindPush || p.DeliveryID != "d-push" || p.Repo != "acme/fleet" || p.Branch != "main" ||
		p.After != "2222222222222222222222222222222222222222" || p.Before != "1111111111111111111111111111111111111111" || len(p.Payload) == 0 {
		t.Errorf("push event = %+v", p)
	}
	if pr.Kind != KindPullRequest || pr.PR != 7 || pr.Action != "opened" || pr.BaseBranch != "main" ||
		pr.HeadSHA != "4444444444444444444444444444444444444444" || pr.Repo != "acme/fleet" ||
		pr.Title != "Bump shop to v2" || pr.Author != "ada" || pr.URL != "https://github.com/acme/fleet/pull/7" {
		t.Errorf("pull request event = %+v", pr)
	}
}

func TestHandler_oversizedBody(t *testing.T) {
	var rec recorder
	h := NewHandler(Config{Secret: testSecret}, rec.enqueue)
	body := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), MaxBodyBytes)...)
	body = append(body, `"}`...)
	w := deliver(h, "push", "d-big", body, "")
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", w.Code)
	}
	if len(rec.events) != 0 {
		t.Fatal("an oversized body was enqueued")
	}
}

func TestHandler_storeFailure(t *testing.T) {
	rec := recorder{err: errors.New("database is down")}
	h := NewHandler(Config{Secret: testSecret}, rec.enqueue)
	w := deliver(h, "push", "d-1", payload(t, "push.json"), "")
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 so that GitHub shows the delivery as failed", w.Code)
	}
	if strings.Contains(w.Body.String(), "database is down") {
		t.Error("the answer leaks an internal error")
	}
}

func TestHandler_methodNotAllowed(t *testing.T) {
	var rec recorder
	h := NewHandler(Config{Secret: testSecret}, rec.enqueue)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/hooks/github", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status %d", w.Code)
	}
}

func FuzzHandler(f *testing.F) {
	for _, name := range []string{"push.json", "pull_request_opened.json", "ping.json"} {
		b, err := os.ReadFile("testdata/github/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("push", b)
		f.Add("pull_request", b)
	}
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		var rec recorder
		h := NewHandler(Config{Secret: testSecret}, rec.enqueue)
		w := deliver(h, event, "d", body, "")
		switch w.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest:
		default:
			t.Fatalf("status %d for a signed delivery", w.Code)
		}
	})
}
