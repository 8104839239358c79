// Package webhook is bosun's border with the forge. Handler takes GitHub-style
// webhooks in: it checks each delivery's signature, decodes push and pull
// request events, and hands them to an enqueue function, answering only after
// that function stored them. Reporter sends results out: commit statuses and
// one plan comment per pull request, edited in place; NewGitHubReporter
// makes one that reaches GitHub's API with a token or as a GitHub App.
//
// The package never plans or deploys, and imports neither the planner nor the
// executor; the daemon turns plans and errors into Status values and comment
// bodies. Deploy statuses leaving through Reporter pass its Redact function
// first, so a secret echoed by a server is kept out of them in one place;
// plans are posted as the planner made them (see ReporterConfig.Redact).
package webhook
