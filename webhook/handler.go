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
	"sync"
	"time"

	"github.com/google/go-github/v66/github"
)

// MaxBodyBytes is the largest delivery accepted; GitHub caps payloads at 25 MB.
const MaxBodyBytes = 25 << 20

// DefaultMaxUnverifiedBytes is the default of Config.MaxUnverifiedBytes.
const DefaultMaxUnverifiedBytes = 64 << 20

// MaxDeliveryIDBytes bounds X-GitHub-Delivery (GitHub sends a 36-character
// GUID).
const MaxDeliveryIDBytes = 100

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
	// Payload is what bosun read from the body, as JSON, for the store: not
	// the body itself, which may be megabytes of commits bosun never uses.
	Payload []byte

	// Push.
	Branch string // the pushed branch, without refs/heads/; "" for tags
	Before string // the branch's previous SHA
	After  string // the pushed SHA; all zeros when the branch was deleted

	// Pull request.
	PR         int
	Action     string // opened, synchronize, reopened, closed, …
	BaseBranch string // the branch the pull request targets
	HeadSHA    string
	Title      string // the pull request's title
	Author     string // the login of who opened it
	URL        string // its page on the forge (html_url)
}

// Config configures a Handler.
type Config struct {
	// Secret is the webhook secret shared with the forge. It must not be
	// empty: an unsigned webhook could make bosun deploy anything.
	Secret []byte
	// MaxUnverifiedBytes bounds the memory held, over all requests at
	// once, by bodies whose signature is not checked yet; a request that
	// would go over it is answered 503 without more of its body read. 0
	// means DefaultMaxUnverifiedBytes.
	MaxUnverifiedBytes int64
	Logger             *slog.Logger // nil means slog.Default()
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

	budget     int64 // Config.MaxUnverifiedBytes
	mu         sync.Mutex
	unverified int64 // bytes of buffers held for unverified bodies
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
	budget := cfg.MaxUnverifiedBytes
	if budget <= 0 {
		budget = DefaultMaxUnverifiedBytes
	}
	return &Handler{secret: cfg.Secret, log: log.With("component", "webhook"), enqueue: enqueue, budget: budget}
}

// reserve takes n bytes of the unverified-body budget, or reports false.
func (h *Handler) reserve(n int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unverified+n > h.budget {
		return false
	}
	h.unverified += n
	return true
}

func (h *Handler) release(n int64) {
	h.mu.Lock()
	h.unverified -= n
	h.mu.Unlock()
}

var (
	errBudget = errors.New("too many unverified bytes in flight")
	errTooBig = errors.New("body larger than 25 MB")
)

// readBody reads a body of at most MaxBodyBytes into a buffer whose every
// byte of capacity is reserved from the unverified budget first. The caller
// releases the returned reservation once the signature is checked.
func (h *Handler) readBody(r *http.Request) (body []byte, reserved int64, err error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, 0, errTooBig
	}
	capacity := int64(64 << 10)
	if r.ContentLength > 0 {
		capacity = r.ContentLength + 1 // one more byte to see the end
	}
	for {
		if !h.reserve(capacity - reserved) {
			return nil, reserved, errBudget
		}
		reserved = capacity
		if int64(cap(body)) < capacity {
			body = append(make([]byte, 0, capacity), body...)
		}
		n, rerr := r.Body.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if len(body) > MaxBodyBytes {
			return nil, reserved, errTooBig
		}
		if rerr == io.EOF {
			return body, reserved, nil
		}
		if rerr != nil {
			return nil, reserved, rerr
		}
		if len(body) == cap(body) {
			capacity = min(2*capacity, MaxBodyBytes+1)
		}
	}
}

// ServeHTTP answers, in order: 405 for a method other than POST; 400 for an
// X-GitHub-Delivery over MaxDeliveryIDBytes; 415 for a form-encoded body;
// 413 for a body over MaxBodyBytes; 503 when unverified bodies already hold
// the MaxUnverifiedBytes budget; 401 when X-Hub-Signature-256 is missing or wrong;
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
	ctx := r.Context()

	if len(delivery) > MaxDeliveryIDBytes {
		log = h.log.With("delivery_id", delivery[:MaxDeliveryIDBytes]+"…", "event", event)
		log.WarnContext(ctx, "webhook refused", "reason", "delivery id too long")
		http.Error(w, fmt.Sprintf("X-GitHub-Delivery is longer than %d bytes", MaxDeliveryIDBytes), http.StatusBadRequest)
		return
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) == "application/x-www-form-urlencoded" {
		log.WarnContext(ctx, "webhook refused", "reason", "form-encoded")
		http.Error(w, "the webhook is form-encoded: set its content type to application/json in the forge's webhook settings", http.StatusUnsupportedMediaType)
		return
	}
	body, reserved, err := h.readBody(r)
	defer h.release(reserved) // held until the handler returns: body is live until then
	switch {
	case errors.Is(err, errBudget):
		log.WarnContext(ctx, "webhook refused", "reason", "unverified bytes budget spent")
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Connection", "close")
		http.Error(w, "busy: too many unverified webhook bytes in flight; retry", http.StatusServiceUnavailable)
		return
	case errors.Is(err, errTooBig):
		log.WarnContext(ctx, "webhook refused", "reason", "body too large")
		w.Header().Set("Connection", "close")
		http.Error(w, "body larger than 25 MB", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !h.validSignature(r.Header.Get("X-Hub-Signature-256"), body) {
		log.WarnContext(ctx, "webhook refused", "reason", "bad signature")
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
		log.WarnContext(ctx, "webhook refused", "reason", "malformed payload", "err", err)
		http.Error(w, "malformed payload (the webhook must send JSON, content type application/json): "+err.Error(), http.StatusBadRequest)
		return
	}
	ev.DeliveryID, ev.ReceivedAt = delivery, time.Now().UTC()
	ev.Payload = ev.summary()
	if err := h.enqueue(ctx, ev); err != nil {
		log.ErrorContext(ctx, "webhook not stored", "repo", ev.Repo, "err", err)
		http.Error(w, "could not store the delivery; retry", http.StatusServiceUnavailable)
		return
	}
	log.InfoContext(ctx, "webhook accepted", "repo", ev.Repo, "kind", string(ev.Kind))
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

// summary is what bosun read from the delivery, for the store.
func (ev Event) summary() []byte {
	var v any
	switch ev.Kind {
	case KindPush:
		v = struct {
			Repo   string `json:"repo"`
			Branch string `json:"branch"`
			Before string `json:"before"`
			After  string `json:"after"`
		}{ev.Repo, ev.Branch, ev.Before, ev.After}
	case KindPullRequest:
		v = struct {
			Repo       string `json:"repo"`
			PR         int    `json:"pr"`
			Action     string `json:"action"`
			BaseBranch string `json:"base_branch"`
			HeadSHA    string `json:"head_sha"`
		}{ev.Repo, ev.PR, ev.Action, ev.BaseBranch, ev.HeadSHA}
	}
	b, _ := json.Marshal(v)
	return b
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
		ev.Title, ev.Author, ev.URL = pr.GetTitle(), pr.GetUser().GetLogin(), pr.GetHTMLURL()
	}
	return ev, nil
}
