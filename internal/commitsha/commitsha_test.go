package commitsha

import "testing"

func TestShort(t *testing.T) {
	for sha, want := range map[string]string{
		"0123456789abcdef0123456789abcdef01234567": "0123456789ab",
		"0123456789ab": "0123456789ab",
		"abc":          "abc",
		"":             "",
	} {
		if got := Short(sha); got != want {
			t.Errorf("Short(%q) = %q, want %q", sha, got, want)
		}
	}
}
