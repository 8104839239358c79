package proxy

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `quo"te\back`, "ctl\x00\x01\n\r\t\x7f", "héllo ✓", "bad\xffutf8\xc3", "</script>&"} {
		out := appendJSONString(nil, s)
		require.True(t, json.Valid(out), "%q gave %s", s, out)
		var back string
		require.NoError(t, json.Unmarshal(out, &back))
		if s == "bad\xffutf8\xc3" {
			require.Equal(t, "bad\ufffdutf8\ufffd", back)
			continue
		}
		require.Equal(t, s, back)
	}
}
