package dashboard

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/bosunhq/bosun/state"
)

// API tokens are "bosun_" and 43 characters (32 random bytes, base64url).
// The store keeps their SHA-256 only; a token is shown once, when made.

const tokenPrefix = "bosun_"

// NewToken returns a fresh API token.
func NewToken() string { return tokenPrefix + randomString(32) }

// HashToken is what the store keeps of a token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

var tokenNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// ValidTokenName says what is wrong with a token name, or nil.
func ValidTokenName(name string) error {
	if !tokenNameRE.MatchString(name) {
		return fmt.Errorf("token name %q: use lowercase letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)", name)
	}
	return nil
}

// CreateToken makes a token called name with role, stores its hash and
// returns the token, which is not kept anywhere else.
func CreateToken(ctx context.Context, st state.Store, name string, role Role, createdBy string) (string, error) {
	if err := ValidTokenName(name); err != nil {
		return "", err
	}
	if !role.Valid() {
		return "", fmt.Errorf("token %s: role %s is not viewer, deployer or admin", name, role)
	}
	tok := NewToken()
	if err := st.CreateToken(ctx, state.Token{Name: name, Role: role.String(), Hash: HashToken(tok), CreatedBy: createdBy}); err != nil {
		return "", err
	}
	return tok, nil
}

var errBadToken = errors.New("unknown or revoked API token")

// lookupToken returns the stored token for the Authorization header's
// bearer token.
func lookupToken(ctx context.Context, st state.Store, header string) (state.Token, Role, error) {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || !strings.HasPrefix(tok, tokenPrefix) {
		return state.Token{}, None, errBadToken
	}
	t, err := st.TokenByHash(ctx, HashToken(strings.TrimSpace(tok)))
	if errors.Is(err, state.ErrNotFound) {
		return state.Token{}, None, errBadToken
	}
	if err != nil {
		return state.Token{}, None, err
	}
	role, err := ParseRole(t.Role)
	if err != nil {
		return state.Token{}, None, fmt.Errorf("token %s: %w", t.Name, err)
	}
	return t, role, nil
}
