package planner

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ConfigError is one mistake in the committed config: where it is and what
// to change. It never contains a secret value.
type ConfigError struct {
	File      string // path inside the config repository, e.g. "services/shop.yml"
	Line, Col int    // 1-based; 0 when the error concerns the whole file
	Msg       string
	// Kamal1 marks a key of Kamal 1 (traefik, the HTTP healthcheck), which
	// Kamal 2 replaced: the whole file predates Kamal 2 (bosun import kamal
	// refuses it).
	Kamal1 bool
}

// Error returns "file:line:col: msg".
func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ConfigErrors is every error of one commit, sorted by file, line and
// column. Plan returns it (and no plan) when the commit is invalid.
type ConfigErrors []*ConfigError

// Error returns one error per line.
func (es ConfigErrors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func compareConfigErrors(a, b *ConfigError) int {
	return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line),
		cmp.Compare(a.Col, b.Col), cmp.Compare(a.Msg, b.Msg))
}

// report collects the errors and notices of one load.
type report struct {
	errs    ConfigErrors
	notices []*ConfigError
}

func (r *report) sorted() (ConfigErrors, []string) {
	slices.SortFunc(r.errs, compareConfigErrors)
	r.errs = slices.CompactFunc(r.errs, func(a, b *ConfigError) bool { return compareConfigErrors(a, b) == 0 })
	slices.SortFunc(r.notices, compareConfigErrors)
	r.notices = slices.CompactFunc(r.notices, func(a, b *ConfigError) bool { return compareConfigErrors(a, b) == 0 })
	notices := make([]string, len(r.notices))
	for i, n := range r.notices {
		notices[i] = n.Error()
	}
	return r.errs, notices
}

// didYouMean returns " (did you mean X?)" for the candidate closest to s
// within a small edit distance, or "".
func didYouMean(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD || d == bestD && c < best {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) <= 3 {
		limit = 1
	}
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20 // not worth comparing; nothing that long is a typo of a key
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// WriteMarkdown writes the errors as a Markdown list for a pull request
// comment: a first line saying the commit is invalid, then one item per
// error with its position.
func (es ConfigErrors) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	n := len(es)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(&b, "**bosun plan: the config is invalid (%d error%s); nothing will be deployed.**\n\n", n, plural)
	for _, e := range es {
		fmt.Fprintf(&b, "- `%s:%d:%d`: %s\n", mdCode(e.File), e.Line, e.Col, mdText(e.Msg))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
