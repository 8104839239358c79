#!/usr/bin/env bash
# Proxy benchmark (`make bench-proxy`): requests per second and p50/p99
# latency with wrk (64 connections, a small response) direct to a target,
# through `bosun proxy`, and through Caddy's reverse_proxy, in one run; then
# failed requests per route switch under load, bosun beside Caddy (switched
# through its admin API /load). Results: docs/benchmarks.md "## Proxy".
#
# Env: BOSUN_BIN (a prebuilt bosun), CADDY_BIN (a prebuilt caddy v2.11.9, else
# built here with Go),
# BENCH_ARGS (extra flags for the driver, e.g. "-d 5s -rounds 1").
set -euo pipefail
cd "$(dirname "$0")/../.."
CADDY_VERSION=v2.11.9
CACHE=${BOSUN_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bosun-bench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

caddy=${CADDY_BIN:-$CACHE/caddy-$CADDY_VERSION}
if [ ! -x "$caddy" ]; then
	echo "building caddy $CADDY_VERSION from the Go module proxy (not vendored)" >&2
	mkdir -p "$CACHE"
	# Outside this module, so go.mod is never touched.
	(cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$work/gobin" \
		go install "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION")
	mv "$work/gobin/caddy" "$caddy"
fi

bosun=${BOSUN_BIN:-$work/bosun}
if [ -z "${BOSUN_BIN:-}" ]; then
	CGO_ENABLED=0 go build -trimpath -o "$bosun" ./cmd/bosun
fi
CGO_ENABLED=0 go build -trimpath -o "$work/bench" ./bench/proxy

# shellcheck disable=SC2086
# The driver finds wrk, installing it through internal/testbed when missing.
"$work/bench" -bosun "$bosun" -caddy "$caddy" ${BENCH_ARGS:-}
