# bosun — see README.md. `make test` is the command CI runs (.ci/run).
GO ?= go
BIN := bin/bosun
# bosun is one static binary: the same file runs on a laptop and, as the
# proxy image, on every server.
export CGO_ENABLED := 0
# Stamped into the binary (`bosun version`). A release's VERSION (vX.Y.Z)
# also names its published proxy image.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION)
PROXY_REPOSITORY ?= ghcr.io/bosunhq/bosun-proxy
# make lint's analysers, run from the Go module proxy at these versions
# (`go run` caches their binaries, so a warm lint builds nothing).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
# govulncheck's database, built from this golang.org/x/vulndb version (the
# module proxy serves it; vuln.go.dev is not reachable) and cached under
# ~/.cache/bosun/vulndb. To refresh: see "Vulnerability checks" in README.md.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018

.PHONY: build release release-push test test-short lint bench bench-proxy fuzz testbed testbed-down testbed-image demo demo-down fresh-check clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/bosun

# Static binaries for linux/amd64, linux/arm64, darwin/arm64 and
# darwin/amd64 with SHA256SUMS, and the proxy image (linux/amd64 + arm64)
# as an OCI image layout, in dist/. release-push uploads that image as
# $(PROXY_REPOSITORY):$(VERSION) (credentials from docker login).
release:
	$(GO) run ./internal/release/cmd/release build -version $(VERSION) -revision $(REVISION) -out dist

release-push:
	$(GO) run ./internal/release/cmd/release push -layout dist/bosun-proxy-$(VERSION)-oci -ref $(PROXY_REPOSITORY):$(VERSION)

# The whole suite. The tests provision what they need (dockerd, the test
# server image, PostgreSQL); BOSUN_TEST_REQUIRE=1 makes a missing service a
# failure, never a skip. The race detector needs cgo.
test: testbed-image
	BOSUN_TEST_REQUIRE=1 CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 80m ./...

# The fast loop while editing: no external services.
test-short:
	$(GO) test -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@out=$$(git grep -nE '\.(Debug|Info|Warn|Error)\("' -- '*.go' ':!:*_test.go'); if [ -n "$$out" ]; then echo "log with slog's *Context methods (DebugContext, InfoContext, WarnContext, ErrorContext):"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) run $(STATICCHECK) ./...
	$(GO) run ./internal/vulndb/cmd/vulndb check -version $(VULNDB_VERSION) -govulncheck $(GOVULNCHECK) -accepted .govulncheck-accepted ./...

# Go benchmarks (planner, executor, daemon), then the proxy against Caddy.
# Results are recorded in docs/benchmarks.md.
bench: bench-proxy
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

bench-proxy:
	bench/proxy/run.sh

# Fuzz the config loader and the proxy's control API decoding (FUZZTIME each).
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME) ./planner/
	$(GO) test -run '^$$' -fuzz FuzzDecodeDeployRequest -fuzztime $(FUZZTIME) ./proxy/

# Test servers for trying bosun by hand: prints their addresses, the SSH key
# and known_hosts paths.
testbed:
	$(GO) run ./internal/testbed/cmd/testbed up -n $(or $(N),2)

testbed-down:
	$(GO) run ./internal/testbed/cmd/testbed down

# Provision dockerd and the test server image (cached by its recipe's hash)
# once, before the test binaries start in parallel.
testbed-image:
	$(GO) run ./internal/testbed/cmd/testbed image

# The main job end to end: 2 test servers, a config repository from
# examples/, bosun serve deploying v1, v2 under load, and a revert.
demo: build
	$(GO) run ./internal/demo -bosun $(BIN)

demo-down:
	$(GO) run ./internal/demo down
	rm -rf .demo

# `make demo` then `make test` on a fresh machine of this kind (Debian 12
# with Go, gcc, git, make, PostgreSQL and the docker CLI; no dockerd, no
# sshd): a container, on a clean clone of HEAD. See docs/testbed.md.
fresh-check:
	$(GO) run ./internal/testbed/cmd/testbed fresh-check

clean:
	rm -rf bin dist
