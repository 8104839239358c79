package proxy

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
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
		require.NoError(t, req.Validate(), "accepted an invalid request")
		out, err := json.Marshal(req)
		require.NoError(t, err)
		again, err := DecodeDeployRequest(bytes.NewReader(out))
		require.NoError(t, err, "re-decode of %s", out)
		out2, _ := json.Marshal(again)
		require.Equal(t, string(out), string(out2), "round trip changed the request")
	})
}
