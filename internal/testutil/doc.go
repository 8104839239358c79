// Package testutil holds the small helpers that tests of several packages
// share and that cannot live in internal/testbed because that package's
// own imports (proxy, imagebuild) would make a cycle with their tests. It
// depends on the standard library only.
//
// Helpers that start or make something real (test servers, PostgreSQL, git
// repositories) belong in internal/testbed.
package testutil
