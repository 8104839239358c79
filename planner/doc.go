// Package planner turns a config repository at one commit into a Plan.
//
// It owns the config repository format: fleet.yml (the server inventory
// and defaults), services/*.yml (Kamal deploy files, or a template: with
// vars:) and templates/*.yml.tmpl (text/template). It reads them from an
// fs.FS, validates every value that will reach a server, and builds one
// normalised container Spec per target (service, role, host). Plan diffs
// those specs against the applied state and says, per target, create,
// update (with the changed fields), remove, unchanged or held.
//
// It never does network I/O, never touches git, never talks to a server or
// the state store, and never holds a secret value longer than it takes to
// hash it: a Spec carries a keyed hash of each secret (SecretRef), and no
// rendering of a plan shows a value or a hash. Templates are code from the
// repository: they render in a child process of the same executable (one
// for all files of a plan, replaced after a runaway file is killed),
// bounded in time, memory and output, and ended before Plan returns (see
// renderchild.go).
//
// Plan checks ctx between files; a cancelled context returns ctx.Err().
// Callers can branch on ConfigErrors (errors.As): the commit is invalid,
// every error is listed with file:line:col, and there is no plan. Any other
// error is an I/O error reading the repository.
//
// The format is documented in docs/config.md, the JSON plan document in
// docs/plan-json.md.
package planner
