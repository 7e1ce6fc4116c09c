# make test: install what the tests need (Debian, as root, only when missing), then
# vet and run every test with the race detector, then fuzz each fuzz target briefly.

GO        ?= go
FUZZTIME  ?= 15s
# Debian packages the tests use, as "command:package" pairs, and Python modules
# for /usr/bin/python3 as "module:package" pairs.
TEST_DEPS := /usr/bin/python3:python3 curl:curl /usr/bin/chromium:chromium certutil:libnss3-tools tcpdump:tcpdump tshark:tshark node:nodejs
PY_DEPS   := cryptography:python3-cryptography

.PHONY: test deps vet unit fuzz bench

test: deps vet unit fuzz

deps:
	@missing=""; \
	for dep in $(TEST_DEPS); do \
		cmd=$${dep%%:*}; pkg=$${dep#*:}; \
		command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	for dep in $(PY_DEPS); do \
		mod=$${dep%%:*}; pkg=$${dep#*:}; \
		/usr/bin/python3 -c "import $$mod" >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "make test: missing Debian packages:$$missing (run as root to install them)" >&2; exit 1; \
		fi; \
		echo "make test: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

vet:
	@# The yaegi symbols of the plugins API must match the code (go generate).
	$(GO) generate ./internal/yaegisym
	@git diff --quiet -- internal/yaegisym || { git diff --stat -- internal/yaegisym; echo 'internal/yaegisym is stale: run go generate ./internal/yaegisym and commit' >&2; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go' ':!:**/testdata/**'))" || { gofmt -l $$(git ls-files '*.go' ':!:**/testdata/**'); echo 'gofmt needed' >&2; exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

# Every Fuzz target of every package, FUZZTIME each (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s $$pkg; \
		done; \
	done

# Benchmarks with enough repetitions for benchstat (see README "Benchmarks").
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -count=10 ./wsframe
