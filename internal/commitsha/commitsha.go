// Package commitsha names commits for people: the short form of a commit
// SHA that messages, statuses, plans and tables show.
package commitsha

// Short returns the first 12 characters of a commit SHA (all of a
// shorter one).
func Short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
