# pushd: one command to build, one to test, one to see it work.
GO ?= go
BIN ?= bin
# The version pushd reports (pushd version, logs): the nearest tag, the
# commit and -dirty for uncommitted changes.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build test demo db fuzz bench apibench clean

## build: bin/pushd and bin/pushsim
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/pushd ./cmd/pushd
	$(GO) build -o $(BIN)/pushsim ./cmd/pushsim

## db: make sure MariaDB answers on 127.0.0.1:3306 (installs it if needed)
db:
	@bash scripts/mariadb.sh

## test: every test (unit, MariaDB integration, end to end), with -race
test: db
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

## demo: pushsim + MariaDB + pushd, one APNs and one FCM campaign, live
demo: build db
	bash scripts/demo.sh

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzParseData$$' -fuzztime $(FUZZTIME) ./campaign/
	$(GO) test -run '^$$' -fuzz '^FuzzPrepare$$' -fuzztime $(FUZZTIME) ./providers/apns/
	$(GO) test -run '^$$' -fuzz '^FuzzPrepare$$' -fuzztime $(FUZZTIME) ./providers/fcm/
	$(GO) test -run '^$$' -fuzz '^FuzzParseResponse$$' -fuzztime $(FUZZTIME) ./providers/apns/
	$(GO) test -run '^$$' -fuzz '^FuzzParseError$$' -fuzztime $(FUZZTIME) ./providers/fcm/
	$(GO) test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME) ./content/
	$(GO) test -run '^$$' -fuzz '^FuzzTemplatePayload$$' -fuzztime $(FUZZTIME) ./providers/apns/
	$(GO) test -run '^$$' -fuzz '^FuzzPrepareFields$$' -fuzztime $(FUZZTIME) ./providers/apns/
	$(GO) test -run '^$$' -fuzz '^FuzzPrepareOverrides$$' -fuzztime $(FUZZTIME) ./providers/fcm/

## apibench: the device API under wrk (apt-get install wrk): registrations and
## opens per second with p50/p99, and a campaign beside registrations
apibench: db
	$(GO) run ./cmd/apibench $(APIBENCH_ARGS)

## bench: pushd end to end against pushsim and MariaDB, with the h2load ceiling
## (N=100k, 3 runs; e.g. BENCH_ARGS="-n 1000000 -provider both")
BENCH_ARGS ?=
bench: db
	$(GO) run ./cmd/pushbench $(BENCH_ARGS)

clean:
	rm -rf $(BIN)
