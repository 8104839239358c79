package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-github/v66/github"
)

// MaxBodyBytes is the largest delivery accepted; GitHub caps payloads at 25 MB.
const MaxBodyBytes = 25 << 20

// Kind is the kind of a delivery bosun acts on.
type Kind string

const (
	KindPush        Kind = "push"
	KindPullRequest Kind = "pull_request"
)

// Event is one accepted delivery, decoded.
type Event struct {
	DeliveryID string    // X-GitHub-Delivery
	Kind       Kind      // push or pull_request
	Repo       string    // "owner/name"
	ReceivedAt time.Time // when the handler read it
	Payload    []byte    // the raw body, for the store

	// Push.
	Branch string // the pushed branch, without refs/heads/; "" for tags
	Before string // the branch's previous SHA
	After  string // the pushed SHA; all zeros when the branch was deleted

	// Pull request.
	PR         int
	Action     string // opened, synchronize, reopened, closed, …
	BaseBranch string // the branch the pull request targets
	HeadSHA    string
}

// Config configures a Handler.
type Config struct {
	// Secret is the webhook secret shared with the forge. It must not be
	// empty: an unsigned webhook could make bosun deploy anything.
	Secret []byte
	Logger *slog.Logger // nil means slog.Default()
}

// EnqueueFunc stores an accepted event and schedules its work. It must not
// deploy or plan in the calling goroutine. The handler answers 202 only after
// it returned nil; a repeated delivery id should return nil without
// scheduling the work again.
type EnqueueFunc func(ctx context.Context, ev Event) error

// Handler serves POST /hooks/github.
type Handler struct {
	secret  []byte
	log     *slog.Logger
	enqueue EnqueueFunc
}

// NewHandler returns the webhook intake. It panics when cfg.Secret is empty.
func NewHandler(cfg Config, enqueue EnqueueFunc) *Handler {
	if len(cfg.Secret) == 0 {
		panic("webhook: empty secret")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Handler{secret: cfg.Secret, log: log.With("component", "webhook"), enqueue: enqueue}
}

// ServeHTTP answers, in order: 405 for a method other than POST; 413 for a
// body over MaxBodyBytes; 401 when X-Hub-Signature-256 is missing or wrong;
// 200 for ping; 202 for an event bosun does not act on (ignored); 400 for a
// malformed body; 503 when the event could not be stored; 202 when it was.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	delivery := r.Header.Get("X-GitHub-Delivery")
	event := r.Header.Get("X-GitHub-Event")
	log := h.log.With("delivery_id", delivery, "event", event)

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("webhook refused", "reason", "body too large")
			http.Error(w, "body larger than 25 MB", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !h.validSignature(r.Header.Get("X-Hub-Signature-256"), body) {
		log.Warn("webhook refused", "reason", "bad signature")
		http.Error(w, "missing or wrong X-Hub-Signature-256", http.StatusUnauthorized)
		return
	}
	if event == "ping" {
		fmt.Fprintln(w, "pong")
		return
	}
	if event != string(KindPush) && event != string(KindPullRequest) {
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "event %q ignored\n", event)
		return
	}
	if delivery == "" {
		http.Error(w, "missing X-GitHub-Delivery", http.StatusBadRequest)
		return
	}
	ev, err := decode(Kind(event), body)
	if err != nil {
		log.Warn("webhook refused", "reason", "malformed payload", "err", err)
		http.Error(w, "malformed payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	ev.DeliveryID, ev.ReceivedAt, ev.Payload = delivery, time.Now().UTC(), body
	if err := h.enqueue(r.Context(), ev); err != nil {
		log.Error("webhook not stored", "repo", ev.Repo, "err", err)
		http.Error(w, "could not store the delivery; retry", http.StatusServiceUnavailable)
		return
	}
	log.Info("webhook accepted", "repo", ev.Repo, "kind", string(ev.Kind))
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintln(w, "accepted")
}

// validSignature checks "sha256=<hex>" against the body in constant time.
func (h *Handler) validSignature(header string, body []byte) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	return hmac.Equal(got, Sign(h.secret, body))
}

// Sign returns the HMAC-SHA256 of body under secret, as GitHub computes it
// for X-Hub-Signature-256 (which carries it as "sha256=" + hex).
func Sign(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// decode reads a push or pull_request payload with go-github's types.
func decode(kind Kind, body []byte) (Event, error) {
	ev := Event{Kind: kind}
	switch kind {
	case KindPush:
		var p github.PushEvent
		if err := json.Unmarshal(body, &p); err != nil {
			return ev, err
		}
		if p.GetRepo().GetFullName() == "" || p.GetAfter() == "" {
			return ev, errors.New("push without repository.full_name or after")
		}
		ev.Repo, ev.Before, ev.After = p.GetRepo().GetFullName(), p.GetBefore(), p.GetAfter()
		ev.Branch, _ = strings.CutPrefix(p.GetRef(), "refs/heads/")
		if !strings.HasPrefix(p.GetRef(), "refs/heads/") {
			ev.Branch = ""
		}
	case KindPullRequest:
		var p github.PullRequestEvent
		if err := json.Unmarshal(body, &p); err != nil {
			return ev, err
		}
		pr := p.GetPullRequest()
		if p.GetRepo().GetFullName() == "" || pr.GetNumber() == 0 || pr.GetHead().GetSHA() == "" {
			return ev, errors.New("pull_request without repository.full_name, number or head.sha")
		}
		ev.Repo, ev.PR, ev.Action = p.GetRepo().GetFullName(), pr.GetNumber(), p.GetAction()
		ev.BaseBranch, ev.HeadSHA = pr.GetBase().GetRef(), pr.GetHead().GetSHA()
	}
	return ev, nil
}
