# Tessera — build, test, run the playground, benchmark.
# Needs only Go (see go.mod), git and make; everything else comes from the Go
# module proxy. Run `make help` for the targets.

GO       ?= go
SHELL    := /bin/bash
BIN      := $(CURDIR)/bin
PKG      := github.com/tessera-sched/tessera
# component-base parses the version at start-up and panics unless it starts
# with vX.Y.Z: without a release tag, the commit goes after v0.0.0-.
VERSION  ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo v0.0.0-$$(git describe --always --dirty 2>/dev/null || echo dev))
LDFLAGS  := -X k8s.io/component-base/version.gitVersion=$(VERSION) \
            -X k8s.io/component-base/version.gitCommit=$(shell git rev-parse HEAD 2>/dev/null) \
            -X k8s.io/component-base/version.buildDate=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)
CONTROLLER_GEN := $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
TEST_TIMEOUT   ?= 30m

.PHONY: all help build test test-gpu unit lint fuzz chaos demo demo-real e2e e2e-bin e2e-host bench bench-smoke manifests verify clean cc

# make bench: BENCH_SCALE=performance (the default; sizes that fit a 2-core
# machine in about 15 minutes) or large (more nodes and pods; much longer).
BENCH_SCALE ?= performance
BENCH_OUT   ?= $(CURDIR)/_output/bench
# Runs of every workload; the report takes the median (single runs on a
# shared 2-core machine vary by 10-15 %).
BENCH_COUNT ?= 3
# scheduler_perf starts one etcd per workload from a binary named etcd on PATH.
PERF_RUN = cd test/perf && PATH=$(BIN):$$PATH TESSERA_BENCH_AUDIT=$(PERF_AUDIT) $(GO) test -count=$(PERF_COUNT) -run '^$$' -bench BenchmarkPerfScheduling -benchtime 1x

all: build

help: ## Show this help.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

build: cc ## Build tessera-scheduler, tessera, tessera-agent and tessera-pause (real nodes' pod sandbox) into ./bin.
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

test: cc lint $(BIN)/etcd ## Unit and integration tests (real kube-apiserver + etcd, in-process), and the scheduler_perf smoke.
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory bench-smoke

# The scheduler_perf workloads labelled smoke (a few nodes and pods, every
# profile), so the benchmark configs never rot. The audit (no partial gang,
# no over-allocated device) fails the run on a violation.
bench-smoke: PERF_AUDIT = $(CURDIR)/_output/bench-smoke/audit.jsonl
bench-smoke: PERF_COUNT = 1
bench-smoke: $(BIN)/etcd
	@rm -rf $(CURDIR)/_output/bench-smoke && mkdir -p $(CURDIR)/_output/bench-smoke
	$(PERF_RUN) -timeout 20m . -args -data-items-dir=$(CURDIR)/_output/bench-smoke -perf-scheduling-label-filter=smoke > $(CURDIR)/_output/bench-smoke/log.txt 2>&1 \
	  || { grep -E -- '--- FAIL|FATAL|Error|audit' $(CURDIR)/_output/bench-smoke/log.txt | head -40; echo "bench-smoke failed; full log: _output/bench-smoke/log.txt"; exit 1; }
	@echo "bench-smoke: ok ($$(grep -c . $(CURDIR)/_output/bench-smoke/audit.jsonl 2>/dev/null || echo 0) workloads audited)"

$(BIN)/etcd:
	$(GO) build -o $(BIN)/etcd go.etcd.io/etcd/server/v3

# tessera-agent's NVML bindings (go-nvml) are cgo: say so plainly rather
# than fail deep in a build.
cc:
	@cc="$$($(GO) env CC)"; command -v "$${cc:-gcc}" >/dev/null 2>&1 || { \
	  echo "A C compiler ($${cc:-gcc}) is needed to build tessera-agent's NVML bindings (cgo): install gcc (e.g. apt-get install gcc)." >&2; exit 1; }

unit: ## Only the fast unit tests of the pure packages and plugins.
	$(GO) test -count=1 ./pkg/...

# Every fuzz target for FUZZTIME each. `make test` runs their seed corpora
# only; this searches for new failing inputs (written to testdata/fuzz/, a
# regression test from then on).
FUZZTIME ?= 30s
FUZZ_TARGETS = ./pkg/gpu:FuzzUnmarshalAssignment ./pkg/gpu:FuzzMIGProfileNames ./pkg/kube:FuzzParseDemand \
	./pkg/agent/deviceplugin:FuzzDeviceIDs ./pkg/plugins:FuzzPluginArgs ./pkg/apis/tessera/v1alpha1:FuzzTopology \
	./pkg/replay:FuzzReadTrace ./pkg/kube:FuzzTopologyFromLabels ./pkg/kube:FuzzElasticQuota ./pkg/plugins/gang:FuzzPodGroup
fuzz: ## Fuzz the parsers of annotations, resources, device IDs, plugin args, NodeGPUTopology, GPU labels, ElasticQuota and PodGroup specs, and traces (FUZZTIME each, default 30s).
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$fn ($$pkg, $(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

# The randomized soak: seeded, bounded, loopback only (an in-process API
# server, simulated nodes, two tessera-scheduler processes from bin/).
CHAOS_DURATION ?= 5m
CHAOS_SEED ?= 1
chaos: build $(BIN)/etcd ## Randomized soak with faults (replicas SIGKILLed, Bindings failing), audited after each (CHAOS_DURATION, CHAOS_SEED); then the pinned faults (kills between a gang's binds and during a reclaim, etcd hung, slowed and cut).
	TESSERA_CHAOS_BIN=$(BIN) TESSERA_CHAOS_SEED=$(CHAOS_SEED) TESSERA_CHAOS_DURATION=$(CHAOS_DURATION) \
	  $(GO) test -tags chaos -count=1 -timeout 60m -v ./test/chaos

lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags gpu ./test/integration/agent
	$(GO) vet -tags e2e ./test/e2e ./pkg/playground
	$(GO) vet -tags chaos ./test/chaos

# Needs an NVIDIA GPU and driver, so it is not part of `make test` (CI has
# no GPU); `make lint` type-checks it there.
test-gpu: cc ## On a GPU node: tessera-agent against the real GPU (discovery vs nvidia-smi, publishing, scheduling by UUID).
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/tessera-agent ./cmd/tessera-agent
	TESSERA_AGENT=$(BIN)/tessera-agent $(GO) test -count=1 -tags gpu -run '^TestRealGPU$$' -v ./test/integration/agent

# Real nodes (pkg/realcluster): the kubelet, kube-proxy and the control plane
# are built from the k8s.io/kubernetes module the scheduler is built from (go.mod
# lists them as tools), with its version stamped in; containerd, runc,
# iptables, the CNI plugins and a static busybox come from Debian.
K8S_VERSION  := $(shell $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes 2>/dev/null)
K8S_LDFLAGS  := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION)))
# chromium renders the GPU map picture for its browser test.
E2E_PACKAGES := containerd runc iptables containernetworking-plugins busybox-static chromium
E2E_TIMEOUT  ?= 20m

e2e-bin: build ## Build kube-apiserver, kube-controller-manager, kube-proxy and kubelet into ./bin (from k8s.io/kubernetes).
	$(GO) build -ldflags "$(K8S_LDFLAGS)" -o $(BIN)/ k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubelet

# Installs what real nodes need from Debian if it is missing (root only).
e2e-host:
	@missing=""; for p in $(E2E_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; done; 	  if [ -n "$$missing" ]; then 	    if [ "$$(id -u)" != 0 ]; then echo "real nodes need root and these Debian packages:$$missing" >&2; exit 1; fi; 	    echo "installing from Debian for real nodes:$$missing"; 	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; 	  fi

e2e: e2e-host e2e-bin ## End-to-end on real nodes (root): kubelets + containerd + runc, Tessera deployed from manifests/, pods that run, leader failover.
	TESSERA_E2E_BIN=$(BIN) $(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) -v ./test/e2e
	TESSERA_E2E_BIN=$(BIN) $(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) -v -run '^TestRunReal$$' ./pkg/playground
	$(GO) test -tags e2e -count=1 -v -run '^TestGPUMapInBrowser$$' ./pkg/gpumap

demo-real: e2e-host e2e-bin ## The playground on real nodes (root): Tessera deployed from manifests/ onto 3 kubelets; pods that run.
	$(BIN)/tessera playground --real-nodes 3

demo: ## Run the playground: real control plane + scheduler on a simulated GPU cluster.
	$(GO) build -o $(BIN)/tessera ./cmd/tessera
	$(BIN)/tessera playground

bench: PERF_AUDIT = $(BENCH_OUT)/audit.jsonl
bench: PERF_COUNT = $(BENCH_COUNT)
bench: $(BIN)/etcd ## scheduler_perf: baseline vs Tessera, same run; writes _output/bench and the table in docs/benchmarks.md.
	@rm -rf $(BENCH_OUT) && mkdir -p $(BENCH_OUT)
	@echo "make bench: scheduler_perf workloads labelled $(BENCH_SCALE), baseline and Tessera profiles, $(BENCH_COUNT) runs (log: $(BENCH_OUT)/log.txt)"
	$(PERF_RUN) -timeout 120m . -args -data-items-dir=$(BENCH_OUT) -perf-scheduling-label-filter=$(BENCH_SCALE) 2>&1 \
	  | tee $(BENCH_OUT)/log.txt | grep --line-buffered -E '^(--- (FAIL|SKIP)|Benchmark[^ ]*/[^ ]*-[0-9]+ )' | grep --line-buffered -v SKIP | cut -c1-100; \
	  test $${PIPESTATUS[0]} -eq 0
	$(GO) run ./hack/benchreport -dir $(BENCH_OUT) -md docs/benchmarks.md -png docs/bench-throughput.png

manifests: ## Regenerate CRDs and deepcopy code from the Go types.
	$(CONTROLLER_GEN) object paths=./pkg/apis/...
	$(CONTROLLER_GEN) crd paths=./pkg/apis/... paths=sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1 output:crd:dir=manifests/crds
	cd charts && go test -count=1 -run TestChartCRDs . -update

verify: manifests ## Fail if generated files are out of date.
	git diff --exit-code -- manifests/ pkg/apis/ charts/

clean:
	rm -rf $(BIN)
