package webhook

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestHandler_unverifiedBodiesBounded: 32 unsigned deliveries that each send
// 6 MB and then stall hold at most the unverified-bytes budget in memory;
// the ones past it are refused (503) without being read. Measured as the
// live heap while they stall.
func TestHandler_unverifiedBodiesBounded(t *testing.T) {
	var rec recorder
	srv := httptest.NewServer(NewHandler(Config{Secret: testSecret}, rec.enqueue))
	defer srv.Close()

	const conns, sent = 32, 6 << 20
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc

	release := make(chan struct{})
	var sentAll sync.WaitGroup // each client has sent its bytes, or was refused
	var done sync.WaitGroup
	codes := make(chan int, conns)
	for range conns {
		pr, pw := io.Pipe()
		sentAll.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			var err error
			for n := 0; n < sent && err == nil; n += len(chunk) {
				_, err = pw.Write(chunk)
			}
			sentAll.Done()
			if err == nil {
				<-release
			}
			pw.CloseWithError(io.ErrUnexpectedEOF)
		}()
		go func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/github", pr)
			req.ContentLength = MaxBodyBytes // announces the largest body; sends 6 MB of it, then stalls
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-GitHub-Delivery", "d-flood")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				pr.CloseWithError(err)
				return
			}
			resp.Body.Close()
			pr.CloseWithError(io.ErrClosedPipe) // the server answered: stop the writer
			codes <- resp.StatusCode
		}()
	}
	sentAll.Wait()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	held := int64(ms.HeapAlloc) - int64(before)
	close(release)
	done.Wait()

	budget := int64(DefaultMaxUnverifiedBytes)
	t.Logf("heap held by %d stalled unsigned deliveries of %d MB: %d MB (budget %d MB)", conns, sent>>20, held>>20, budget>>20)
	if held > budget+16<<20 {
		t.Errorf("%d MB live while unsigned bodies stalled, want at most the %d MB budget (+16 MB slack)", held>>20, budget>>20)
	}
	refused := 0
	for range conns {
		if c := <-codes; c == http.StatusServiceUnavailable {
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("no delivery was refused with 503 past the budget")
	}
}

// TestHandler_keepsWhatIsNeeded: a signed 10 MB push is accepted, and the
// event handed on for the store carries what bosun read from it, not the
// body.
func TestHandler_keepsWhatIsNeeded(t *testing.T) {
	var rec recorder
	h := NewHandler(Config{Secret: testSecret}, rec.enqueue)
	var p map[string]any
	if err := json.Unmarshal(payload(t, "push.json"), &p); err != nil {
		t.Fatal(err)
	}
	p["padding"] = strings.Repeat("x", 10<<20)
	body, _ := json.Marshal(p)
	if w := deliver(h, "push", "d-10mb", body, ""); w.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	ev := rec.events[0]
	if len(ev.Payload) > 1024 {
		t.Fatalf("the event keeps %d bytes of payload for the store, want only what bosun read (under 1 KB)", len(ev.Payload))
	}
	var kept map[string]any
	if err := json.Unmarshal(ev.Payload, &kept); err != nil || kept["after"] != ev.After || kept["repo"] != ev.Repo {
		t.Errorf("kept payload %s (%v) does not say repo and after", ev.Payload, err)
	}
}

// TestHandler_intakeMessages: a form-encoded delivery is told to be JSON; an
// oversized delivery id is refused, not stored.
func TestHandler_intakeMessages(t *testing.T) {
	var rec recorder
	h := NewHandler(Config{Secret: testSecret}, rec.enqueue)
	body := []byte("payload=%7B%22ref%22%3A%22x%22%7D")
	req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "d-form")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(Sign(testSecret, body)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusUnsupportedMediaType || !strings.Contains(w.Body.String(), "application/json") {
		t.Errorf("form-encoded delivery: %d %q, want 415 saying to send application/json", w.Code, w.Body)
	}

	long := strings.Repeat("a", 100<<10)
	if w := deliver(h, "push", long, payload(t, "push.json"), ""); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "X-GitHub-Delivery") {
		t.Errorf("100 KB delivery id: %d %q, want 400 naming X-GitHub-Delivery", w.Code, w.Body)
	}
	if len(rec.events) != 0 {
		t.Errorf("%d events enqueued, want none", len(rec.events))
	}
}
