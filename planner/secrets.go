package planner

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// SecretSource resolves secret names to values. Implementations must not
// log or keep more than they were given.
type SecretSource interface {
	LookupSecret(name string) (value string, ok bool)
}

// RedactedText is the one placeholder bosun writes where it hides a value:
// secret values in deploy statuses and executor errors, passwords in DSNs
// and URLs.
const RedactedText = "[redacted]"

// SecretSources names where the values of services' env.secret names come
// from. Nothing else is read: a name that none of them holds is not set.
type SecretSources struct {
	Files     []string // dotenv files; a later file wins over an earlier one, and files win over the environment
	Env       []string // environment variables, by exact name
	EnvPrefix string   // and every environment variable whose name starts with this
	// AllEnv makes every environment variable a secret. Only for the CLI,
	// whose environment is the operator's own shell; never for the daemon,
	// whose environment holds its own credentials.
	AllEnv bool
}

// Secrets is the SecretSource LoadSecrets returns. It remembers each value
// it hands out (of 4 bytes or more), so that Redact can strip them from
// text that leaves the process. Safe for concurrent use.
type Secrets struct {
	getenv func(string) string
	from   SecretSources
	env    map[string]bool
	files  map[string]string

	mu   sync.Mutex
	seen map[string]bool
}

// LookupSecret returns the value of a secret name from the configured
// sources: the files, then the environment variables the sources allow (an
// empty variable counts as unset).
func (s *Secrets) LookupSecret(name string) (string, bool) {
	v, ok := s.files[name]
	if !ok && s.getenv != nil && (s.from.AllEnv || s.env[name] || (s.from.EnvPrefix != "" && strings.HasPrefix(name, s.from.EnvPrefix))) {
		v = s.getenv(name)
		ok = v != ""
	}
	if ok {
		s.Hide(v)
	}
	return v, ok
}

// Hide makes Redact replace v too: every value LookupSecret hands out,
// and a credential of bosun itself, such as the forge token, that no
// service looks up. Values under 4 bytes are ignored: they would redact
// ordinary words.
func (s *Secrets) Hide(v string) {
	if len(v) < 4 {
		return
	}
	s.mu.Lock()
	s.seen[v] = true
	s.mu.Unlock()
}

// Redact replaces every secret value looked up so far, and every hidden
// one, with RedactedText.
// It is for text that may echo a value the config did not write (server
// output in a deploy error); never for text made from a pull request's
// files, where a replaced value would confirm a guess.
func (s *Secrets) Redact(text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for v := range s.seen {
		text = strings.ReplaceAll(text, v, RedactedText)
	}
	return text
}

// LoadSecrets reads the secrets files of from and returns the source of
// services' secrets; getenv (may be nil) reads the environment variables
// from allows. Lookup order: the files, the last file that defines a name
// winning, then the environment. So files given explicitly override the
// environment, and later files override earlier ones, as Kamal's secrets
// files do.
//
// The dotenv format: KEY=value lines, an optional "export " prefix, '#'
// comments, single-quoted values taken literally, double-quoted values with
// \n, \t, \", \\ escapes, unquoted values trimmed and ended by " #". There
// is no $VAR expansion and no command substitution. Errors name the file and
// line, never a value.
func LoadSecrets(getenv func(string) string, from SecretSources) (*Secrets, error) {
	s := &Secrets{getenv: getenv, from: from, env: map[string]bool{}, files: map[string]string{}, seen: map[string]bool{}}
	for _, name := range from.Env {
		s.env[name] = true
	}
	for _, f := range from.Files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read secrets file: %w", err)
		}
		vals, err := parseDotenv(f, data)
		if err != nil {
			return nil, err
		}
		for k, v := range vals {
			s.files[k] = v
		}
	}
	return s, nil
}

func parseDotenv(file string, data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(strings.TrimSuffix(sc.Text(), "\r"))
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		text = strings.TrimPrefix(text, "export ")
		key, val, ok := strings.Cut(text, "=")
		key = strings.TrimSpace(key)
		if !ok || checkEnvName(key) != "" {
			return nil, fmt.Errorf("secrets file %s:%d: want NAME=value with NAME of letters, digits and '_'", file, line)
		}
		val = strings.TrimLeft(val, " \t")
		switch {
		case strings.HasPrefix(val, "'"):
			end := strings.IndexByte(val[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("secrets file %s:%d: %s: unclosed single quote", file, line, key)
			}
			val = val[1 : end+1]
		case strings.HasPrefix(val, `"`):
			v, err := unquoteDotenv(val[1:])
			if err != nil {
				return nil, fmt.Errorf("secrets file %s:%d: %s: %w", file, line, key, err)
			}
			val = v
		default:
			if i := strings.Index(val, " #"); i >= 0 {
				val = val[:i]
			}
			val = strings.TrimSpace(val)
		}
		out[key] = val
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read secrets file %s: %w", file, err)
	}
	return out, nil
}

func unquoteDotenv(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), nil
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("unclosed double quote")
}

// hashSecret returns "hmac-sha256:<hex>" of value under key.
func hashSecret(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// ReadSecret returns a credential of bosun itself (a webhook secret, a forge
// or git token), named in bosun.yaml by an environment variable or a file
// (exactly one of them is set), trimmed of surrounding white space. Like
// LoadSecrets, its errors name the variable or file, never a value.
func ReadSecret(getenv func(string) string, envName, file string) (string, error) {
	switch {
	case envName != "":
		v := strings.TrimSpace(getenv(envName))
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty or not set", envName)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", file)
		}
		return v, nil
	}
	return "", errors.New("no secret configured")
}
