# berth — see README.md. Every target works on a fresh Debian machine with Go.
GO      ?= go
BIN     := $(CURDIR)/bin
BERTH   := $(BIN)/berth
BUILDKITD := $(BIN)/buildkitd
FUZZTIME ?= 30s
export BERTH_BUILDKITD := $(BUILDKITD)

.PHONY: all build test testdeps demo bench lint fuzz deps clean berth

all: build

build: berth $(BUILDKITD)

# berth itself: go build is incremental, so always ask it.
berth:
	$(GO) build -o $(BERTH) ./cmd/berth

# The BuildKit daemon, at the version pinned in go.mod (tool directive), so
# the embedded engine and the client library always match.
$(BUILDKITD): go.mod go.sum
	$(GO) build -ldflags "-X github.com/moby/buildkit/version.Version=$$($(GO) list -m -f '{{.Version}}' github.com/moby/buildkit)" -o $@ github.com/moby/buildkit/cmd/buildkitd

# What the embedded engine and the tests need from the system.
deps:
	@command -v runc >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing runc (Debian package)"; \
	    (apt-get install -y runc || (apt-get update && apt-get install -y runc)) >/dev/null; \
	  else echo "berth needs runc: install it (Debian/Ubuntu: sudo apt-get install -y runc)"; exit 1; fi; }

# What the end-to-end tests need besides: Docker, systemd-analyze, rootless
# BuildKit, busybox, sshd. Installed as root with apt-get when missing.
testdeps: deps
	@missing=""; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v dockerd >/dev/null || missing="$$missing docker.io"; \
	command -v rootlesskit >/dev/null || missing="$$missing rootlesskit"; \
	command -v newuidmap >/dev/null || missing="$$missing uidmap"; \
	command -v setpriv >/dev/null || missing="$$missing util-linux"; \
	command -v gcc >/dev/null || missing="$$missing gcc"; \
	{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || missing="$$missing busybox-static"; \
	{ [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null; } || missing="$$missing openssh-server openssh-client"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing for the tests:$$missing (Debian packages)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    (apt-get install -y -qq $$missing || (apt-get update -qq && apt-get install -y -qq $$missing)) >/dev/null; \
	  else echo "the end-to-end tests need:$$missing (Debian packages; run make test as root to install them)"; exit 1; fi; \
	fi

# The packages that work side by side in one process (services loaded in
# parallel, definitions marshaled in parts) run once more under the race
# detector, which needs cgo (gcc).
test: build testdeps
	$(GO) test -count=1 -timeout 60m ./...
	$(GO) test -count=1 -race ./pkg/config ./pkg/llbgen ./pkg/plan

demo: build deps
	$(BERTH) build examples/monorepo
	@echo
	@echo "artifacts are under examples/monorepo/dist:"
	@echo "  OCI layout (one multi-platform index per service): examples/monorepo/dist/oci"
	@echo "  binaries:     examples/monorepo/dist/bin/<service>/<os>_<arch>[_<variant>]/"
	@echo "  Dockerfiles:  examples/monorepo/dist/docker/<service>/Dockerfile"
	@echo "  systemd:      examples/monorepo/dist/systemd/<service>.service"
	@echo "  bundles:      examples/monorepo/dist/bundle/"

# Go benchmarks, then the harness (bench/): berth against the host's go build
# and a hand-written Dockerfile on the same BuildKit; writes BENCHMARKS.md.
bench: build deps
	$(GO) test -p 1 -run '^$$' -bench . -benchmem ./pkg/...
	$(GO) run ./bench -n 8 -runs 3 -out BENCHMARKS.md

lint:
	@out=$$(gofmt -l cmd pkg schemas); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool cue vet ./schemas

# Each fuzz target for FUZZTIME; their seed corpora run in every `make test`.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./pkg/config
	$(GO) test -run '^$$' -fuzz '^FuzzPlan$$' -fuzztime $(FUZZTIME) ./pkg/plan
	$(GO) test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME) ./pkg/dockerfile
	$(GO) test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME) ./pkg/systemd

clean:
	rm -rf bin examples/*/dist
