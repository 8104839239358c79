# bosun — see README.md. `make test` is the command CI runs (.ci/run).
GO ?= go
BIN := bin/bosun
export CGO_ENABLED := 0

.PHONY: build test test-short lint bench fuzz clean

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/bosun

# The whole suite. The tests provision what they need (dockerd, the testbed
# image, PostgreSQL); BOSUN_TEST_REQUIRE=1 makes a missing service a failure,
# never a skip.
test:
	BOSUN_TEST_REQUIRE=1 CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 75m ./...

# The fast loop while editing: no external services.
test-short:
	$(GO) test -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
