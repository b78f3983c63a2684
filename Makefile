# Tessera — build, test, run the playground, benchmark.
# Needs only Go (see go.mod), git and make; everything else comes from the Go
# module proxy. Run `make help` for the targets.

GO       ?= go
BIN      := $(CURDIR)/bin
PKG      := github.com/tessera-sched/tessera
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
LDFLAGS  := -X k8s.io/component-base/version.gitVersion=$(VERSION) \
            -X k8s.io/component-base/version.gitCommit=$(shell git rev-parse HEAD 2>/dev/null) \
            -X k8s.io/component-base/version.buildDate=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)
CONTROLLER_GEN := $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
TEST_TIMEOUT   ?= 30m

.PHONY: all help build test unit lint demo bench manifests verify clean cc

all: build

help: ## Show this help.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

build: cc ## Build tessera-scheduler, tessera and tessera-agent into ./bin.
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

test: cc lint ## Unit and integration tests (real kube-apiserver + etcd, in-process).
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# tessera-agent's NVML bindings (go-nvml) are cgo: say so plainly rather
# than fail deep in a build.
cc:
	@cc="$$($(GO) env CC)"; command -v "$${cc:-gcc}" >/dev/null 2>&1 || { \
	  echo "A C compiler ($${cc:-gcc}) is needed to build tessera-agent's NVML bindings (cgo): install gcc (e.g. apt-get install gcc)." >&2; exit 1; }

unit: ## Only the fast unit tests of the pure packages and plugins.
	$(GO) test -count=1 ./pkg/...

lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

demo: ## Run the playground: real control plane + scheduler on a simulated GPU cluster.
	$(GO) build -o $(BIN)/tessera ./cmd/tessera
	$(BIN)/tessera playground

bench: ## Benchmarks (scheduler_perf and trace replay): not implemented yet.
	@echo "make bench: not implemented yet; see the benchmarks issue." >&2; exit 2

manifests: ## Regenerate CRDs and deepcopy code from the Go types.
	$(CONTROLLER_GEN) object paths=./pkg/apis/...
	$(CONTROLLER_GEN) crd paths=./pkg/apis/... paths=sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1 output:crd:dir=manifests/crds

verify: manifests ## Fail if generated files are out of date.
	git diff --exit-code -- manifests/ pkg/apis/

clean:
	rm -rf $(BIN)
