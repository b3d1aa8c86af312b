# Sluice build, test and run targets. `make cluster` and `make test` do all
# the set-up a fresh machine needs (Go modules, Debian packages).
GO      ?= go
BIN     := bin/sluice
PKGS    := ./...
# Go test timeout for the whole suite (the short chaos run included).
TEST_TIMEOUT ?= 18m

.PHONY: all build image test unit chaos chaos-short chaos-selftest bench fuzz fuzz-short lint deps cluster stop status clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/sluice

# image builds the Docker image docker-compose.yml runs: FROM scratch with
# the static binary, bin/ as the build context (nothing is pulled).
IMAGE ?= sluice:latest
image:
	CGO_ENABLED=0 $(GO) build -o bin/sluice-static ./cmd/sluice
	docker build -q -t $(IMAGE) -f Dockerfile bin || DOCKER_BUILDKIT=0 docker build -q -t $(IMAGE) -f Dockerfile bin

# deps installs what the tests need beyond Go modules: iptables for the
# chaos suite's network partitions, fuse3 for its power-loss faults (only
# when root and missing); the Kafka clients; the clients the agent tests
# drive (logger, curl, nc) and chromium (scripts/ensure-tools.sh).
deps:
	$(GO) mod download
	scripts/ensure-iptables.sh || echo "iptables unavailable: the chaos suite runs kill and pause only"
	scripts/ensure-fuse.sh || echo "FUSE unavailable: the chaos suite skips power-loss faults"
	scripts/ensure-kafka-clients.sh || echo "some Kafka clients unavailable: their tests skip"
	scripts/ensure-tools.sh || echo "some test tools are missing: the tests that drive them skip"

test: deps build fuzz-short
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)

# unit skips the short chaos run and the multi-process tests.
unit:
	$(GO) test -race -short $(PKGS)

cluster: build
	scripts/cluster.sh start

stop:
	scripts/cluster.sh stop

status:
	scripts/cluster.sh status

chaos: deps build
	scripts/chaos.sh

# chaos-selftest builds sluice with -tags failpoints and runs the suite once
# clean (must pass) and once per failpoint under the nemeses that expose it
# (each must be caught with its anomaly class).
chaos-selftest: deps
	SLUICE_SELFTEST_FULL=1 $(GO) test -race -count=1 -timeout 40m -run '^TestSelfTest$$' -v ./chaos/

# Three runs each: report medians, the machines are shared and noisy.
# scripts/bench.sh runs the standard cluster set (sluice bench ...) and
# writes PERFORMANCE.md; its knobs (RUNS, CONSUME_BYTES, IDLE_PARTITIONS,
# ONLY, ...) pass through the environment. Long; never part of make test.
bench: build
	scripts/bench.sh
	$(GO) test -run '^$$' -bench . -count 3 ./batch/ ./fsm/ ./transport/
	$(GO) test -run '^$$' -bench BenchmarkStoreLogs -count 3 ./node/
	$(GO) test -run '^$$' -bench BenchmarkProduce -benchtime 20000x -count 3 ./node/
	$(GO) test -run '^$$' -bench BenchmarkSinkWriter -benchtime 200x -count 3 ./node/

.PHONY: bench-agent
# bench-agent: netcat → file channel → sluice sink at R=3 against a local cluster.
bench-agent: build
	scripts/cluster.sh start
	bin/sluice bench agent --server 127.0.0.1:7071,127.0.0.1:7072,127.0.0.1:7073; status=$$?; scripts/cluster.sh stop; exit $$status

# Fuzz targets as package:FuzzName, one a line; each also runs its seed
# corpus (testdata/fuzz/) as a normal test.
FUZZ_TARGETS := \
	./transport/:FuzzReadFrame \
	./batch/:FuzzValidateAndWalk \
	./fsm/:FuzzSegmentFrame \
	./fsm/:FuzzIndexEntries \
	./fsm/:FuzzSnapshotHeader \
	./transport/:FuzzConnHeader \
	./agent/chain/:FuzzDecodeAppendBatch \
	./kafka/:FuzzDecodeRequest \
	./agent/channel/:FuzzDecodeRecord \
	./chaos/:FuzzDecodeBatches
FUZZ_TIME ?= 60s
FUZZ_SHORT_TIME ?= 3s

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZ_TIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZ_TIME) "$${t%%:*}"; \
	done

# fuzz-short is part of make test: a few seconds of each target.
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(FUZZ_SHORT_TIME)

lint:
	gofmt -l . | (! grep .)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

clean:
	rm -rf bin data store
