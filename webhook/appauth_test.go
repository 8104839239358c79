package webhook

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-github/v66/github"
)

func TestAppTransport(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	parsed, err := ParseAppKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}

	var exchanges atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v3/app/installations/77/access_tokens", func(w http.ResponseWriter, r *http.Request) {
		jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		parts := strings.Split(jwt, ".")
		if !ok || len(parts) != 3 {
			http.Error(w, "no JWT", http.StatusUnauthorized)
			return
		}
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c struct {
			Iss string `json:"iss"`
			Exp int64  `json:"exp"`
		}
		json.Unmarshal(claims, &c)
		if c.Iss != "12" || time.Until(time.Unix(c.Exp, 0)) > 10*time.Minute {
			http.Error(w, "bad claims", http.StatusUnauthorized)
			return
		}
		exchanges.Add(1)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(github.InstallationToken{Token: github.String("ghs_installation"), ExpiresAt: &github.Timestamp{Time: time.Now().Add(time.Hour)}})
	})
	mux.HandleFunc("POST /api/v3/repos/acme/fleet/statuses/abc", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "token ghs_installation" {
			http.Error(w, "want the installation token", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{}`))
	})
	mux.HandleFunc("GET /api/v3/app", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			http.Error(w, "GET /app wants the App's JWT", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(github.App{Slug: github.String("bosun-acme")})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tr := &AppTransport{AppID: 12, InstallationID: 77, Key: parsed, BaseURL: srv.URL + "/"}
	client, err := github.NewClient(&http.Client{Transport: tr}).WithEnterpriseURLs(srv.URL+"/", srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	r := NewReporter(ReporterConfig{}, client)
	for range 3 {
		if err := r.SetStatus(t.Context(), Status{Repo: "acme/fleet", SHA: "abc", Context: ContextPlan, State: StateSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	if n := exchanges.Load(); n != 1 {
		t.Errorf("%d token exchanges for 3 calls, want 1 (cached)", n)
	}
	if login, err := tr.BotLogin(t.Context()); err != nil || login != "bosun-acme[bot]" {
		t.Errorf("BotLogin = %q, %v; want bosun-acme[bot]", login, err)
	}
	if _, err := ParseAppKey([]byte("not a key")); err == nil {
		t.Error("garbage parsed as a key")
	}
}
