package proxy

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeDeployRequest feeds arbitrary bytes to the control API's
// request decoder: it must never panic, and whatever it accepts must be
// valid and survive a JSON round trip unchanged.
func FuzzDecodeDeployRequest(f *testing.F) {
	for _, s := range []string{
		`{"service":"web","target":"127.0.0.1:3000"}`,
		`{"service":"web","target":"web-abc:80","hosts":["App.Example.com","*.example.com"],"path_prefix":"/api","strip_prefix":true}`,
		`{"service":"shop","target":"[::1]:8080","hosts":["shop.example.com"],"tls":true,"health_path":"/healthz","health_interval":"500ms","deploy_timeout":"1m","drain_timeout":"0s"}`,
		`{"service":"x","target":"h:1","response_timeout":30}`,
		`{"service":"","target":""}`,
		`[]`, `null`, `{"service":"web"} {"service":"web"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeDeployRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		out, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeDeployRequest(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
		out2, _ := json.Marshal(again)
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the request:\n%s\n%s", out, out2)
		}
	})
}
