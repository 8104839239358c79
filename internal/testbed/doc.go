// Package testbed starts real test servers for bosun's tests and for people
// trying bosun by hand: Debian containers with their own sshd and dockerd
// (Docker-in-Docker) on a private test network, a container registry on the
// host that the servers trust as insecure, and small app images built from
// static Go binaries with no base image.
//
// It owns everything it starts on the host's Docker daemon, and finds it again
// by the label bosun.testbed=<run id>: every container and network of a bed
// carries it and is removed by it when the bed is closed (for tests, at
// t.Cleanup). Leftovers of crashed runs are swept by the next run. It never
// touches a container or network without its label, never publishes a port
// beyond 127.0.0.1, and never pulls an image from the internet: the server
// image is made with debootstrap from the machine's Debian mirror and cached
// by a hash of its recipe, once per machine.
//
// When no Docker daemon answers, the harness provisions one (installs Debian's
// docker.io, starts dockerd); several test binaries doing so at once are
// serialised by a lock file. Under -short, tests that need it are skipped;
// when provisioning fails they are skipped too, unless BOSUN_TEST_REQUIRE=1,
// which makes them fail.
//
// Every other program a test, benchmark or the demo needs from the machine
// (sshd, debootstrap, PostgreSQL, wrk) comes the same way, through
// EnsureCommand (provision.go), the one place that runs apt-get.
// FreshCheck (`make fresh-check`) shows that nothing else is assumed: it runs
// the README's commands in a container that has only what a new machine has.
//
// The library works outside of tests too: Launch and Bed.Close return errors
// and take a context; Start, RequireDocker and the methods taking a
// testing.TB are thin wrappers for tests. cmd/testbed uses the former for
// `make testbed`.
//
// The PostgreSQL harness (postgres.go) lives here as well and is owned
// separately.
package testbed
