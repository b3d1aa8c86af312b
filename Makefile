# Sluice build, test and run targets. `make cluster` and `make test` do all
# the set-up a fresh machine needs (Go modules, Debian packages).
GO      ?= go
BIN     := bin/sluice
PKGS    := ./...
# Go test timeout for the whole suite (the short chaos run included).
TEST_TIMEOUT ?= 18m

.PHONY: all build test unit chaos chaos-short chaos-selftest chaos-soak bench fuzz lint deps cluster stop status clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/sluice

# deps installs what the tests need beyond Go modules: iptables for the
# chaos suite's network partitions and fuse3 for its power-loss faults
# (only when root and missing).
deps:
	$(GO) mod download
	scripts/ensure-iptables.sh || echo "iptables unavailable: the chaos suite runs kill and pause only"
	scripts/ensure-fuse.sh || echo "FUSE unavailable: the chaos suite skips power-loss faults"

test: deps build
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
bench: build
	$(GO) test -run '^$$' -bench . -count 3 ./fsm/ ./transport/
	$(GO) test -run '^$$' -bench BenchmarkProduce -benchtime 20000x -count 3 ./node/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzReadFrame -fuzztime 30s ./transport/

lint:
	gofmt -l . | (! grep .)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

clean:
	rm -rf bin data store
