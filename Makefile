# Entry points for developers and CI. Run from the repository root; every Go
# command goes through go.work, so one invocation covers all modules.

GO ?= go
MODULES := orderservice productservice shared sql e2e
PACKAGES := $(foreach m,$(MODULES),./$(m)/...)
# -count=1: integration tests talk to MariaDB and child processes, so a cached
# pass proves nothing. -p 2: the machine has two cores and each e2e test runs
# two services of its own.
TEST_FLAGS ?= -count=1 -timeout 15m -p 2
# Flags for the launcher, e.g. make run RUN_FLAGS="-order-port 9090".
RUN_FLAGS ?=

.PHONY: help run build test chaos db vet lint clean

help:
	@echo "make run    start MariaDB if needed, build and run both services with a demo catalog (Ctrl-C stops)"
	@echo "make test   start MariaDB if needed, go vet and go test every module"
	@echo "make chaos  the full chaos suite: every fault scenario and a 5,000-order soak (make test runs a short profile)"
	@echo "make build  build bin/productservice and bin/orderservice"
	@echo "make db     start MariaDB on 127.0.0.1:3306 if it does not answer, and wait for it"
	@echo "make lint   go vet and a gofmt check"
	@echo "make clean  remove bin/ and .run/ (logs, the local stack's tokens and its Kafka data)"

# Built and exec'd rather than `go run`: go run exits 1 after any Ctrl-C and
# does not pass SIGTERM on, while the launcher itself stops both services and
# exits 0.
run:
	$(GO) build -o bin/stack ./e2e/cmd/stack
	exec bin/stack $(RUN_FLAGS)

build:
	$(GO) build -o bin/productservice ./productservice/cmd/productservice
	$(GO) build -o bin/orderservice ./orderservice/cmd/orderservice

db:
	$(GO) run ./e2e/cmd/dbup

test: db vet
	$(GO) test $(TEST_FLAGS) $(PACKAGES)

# The full chaos suite; CHAOS_SEED=<n> replays a run.
chaos: db
	CHAOS_PROFILE=full $(GO) test -count=1 -v -timeout 60m -run TestChaos ./e2e/chaos/

vet:
	$(GO) vet $(PACKAGES)

lint: vet
	@files="$$(gofmt -l $(MODULES))"; \
	if [ -n "$$files" ]; then echo "not gofmt-clean (run gofmt -w):"; echo "$$files"; exit 1; fi

clean:
	rm -rf bin .run
