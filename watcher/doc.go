// Package watcher is the only package in bosun that touches git. It opens or
// clones a repository with go-git, resolves refs to commits, and presents the
// tree of one commit as an fs.FS, which is what the planner reads. It never
// parses deploy configs and never talks to a server.
//
// A commit's FS is immutable: two reads of one SHA always see the same files,
// so a plan made from it can be reproduced.
package watcher
