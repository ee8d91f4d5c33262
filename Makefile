# proofmesh — build, test and run targets. `make help` lists them.
GO        ?= go
BIN       ?= bin/proofmesh
PKGS      ?= ./...
FUZZTIME  ?= 60s
STATICCHECK_VERSION ?= v0.7.0
# The release and commit stamped into the binary (internal/buildinfo).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/proofmesh/proofmesh/internal/buildinfo.version=$(VERSION) -X github.com/proofmesh/proofmesh/internal/buildinfo.commit=$(COMMIT)

.PHONY: help build test test-short lint fuzz bench demo wasm check-wasm keys testnet-up testnet-down testnet-logs e2e clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

build: ## build bin/proofmesh (static, CGO_ENABLED=0), stamped with git describe and the commit
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/proofmesh

test: ## run every test with the race detector
	$(GO) test -race -timeout 20m $(PKGS)

test-short: ## quick tests without -race
	$(GO) test -short $(PKGS)

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

fuzz: ## run every fuzz target for FUZZTIME each (default 60s)
	bash scripts/fuzz.sh $(FUZZTIME)

bench: ## run the benchmarks and print their figures
	$(GO) test -run '^$$' -bench . -benchtime 1x $(PKGS)

demo: build ## a local testnet, tasks of every built-in type, verified results
	$(BIN) demo

wasm: ## rebuild the built-in WASM task modules in tasks/
	bash tasks/build.sh

check-wasm: ## check that the committed WASM modules rebuild to the same bytes
	PROOFMESH_REBUILD_WASM=1 $(GO) test -count=1 -run TestModulesRebuildReproducibly ./tasks/

keys: ## regenerate the default Groth16 keys (changes the pinned vk hashes!)
	$(GO) run ./zk/cmd/ceremony -out zk/keys -contributions 3

clean:
	rm -rf bin

testnet-up: ## docker compose testnet: image FROM scratch, boot + 4 nodes, APIs on 127.0.0.1:18080-18084
	bash testnet/up.sh

testnet-down: ## stop the compose testnet and remove its containers, network and data (KEEP_DATA=1 keeps data)
	bash testnet/down.sh

testnet-logs: ## follow the compose testnet's logs
	bash -c '. testnet/lib.sh && compose logs -f --tail=100'

e2e: ## the compose testnet end to end: tasks of every type, offline audit, fault scripts (several minutes; not in make test)
	bash testnet/e2e.sh
