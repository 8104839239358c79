package planner

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// SecretSource resolves secret names to values. Implementations must not
// log or keep more than they were given.
type SecretSource interface {
	LookupSecret(name string) (value string, ok bool)
}

// secretMap is the SecretSource LoadSecrets returns.
type secretMap struct {
	getenv func(string) string
	files  map[string]string
}

func (s *secretMap) LookupSecret(name string) (string, bool) {
	if v, ok := s.files[name]; ok {
		return v, true
	}
	if s.getenv != nil {
		if v := s.getenv(name); v != "" {
			return v, true
		}
	}
	return "", false
}

// LoadSecrets returns the secrets of the process environment (getenv, may
// be nil) and of dotenv files. Lookup order: the files, the last file that
// defines a name winning, then the environment (an empty variable counts as
// unset). So files given explicitly override the ambient environment, and
// later files override earlier ones, as Kamal's secrets files do.
//
// The dotenv format: KEY=value lines, an optional "export " prefix, '#'
// comments, single-quoted values taken literally, double-quoted values with
// \n, \t, \", \\ escapes, unquoted values trimmed and ended by " #". There
// is no $VAR expansion and no command substitution. Errors name the file and
// line, never a value.
func LoadSecrets(getenv func(string) string, files []string) (SecretSource, error) {
	s := &secretMap{getenv: getenv, files: map[string]string{}}
	for _, f := range files {
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
