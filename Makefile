# astrid-go: `make run` builds everything and runs the host on examples/; `make test` runs the tests.
export GOFLAGS := -buildvcs=false
GO ?= go
BIN := bin
STATE := $(BIN)/state

# Every directory under examples/ with a Capsule.toml is a capsule built with standard Go;
# examples/embed is a Go program that embeds the host.
EXAMPLES := $(patsubst %/Capsule.toml,%,$(wildcard examples/*/Capsule.toml))

.PHONY: all build binaries capsules run test bench fuzz proto clean

all: build

build: binaries capsules

# The host is pure Go; the shim links wasmtime (cgo); astrid-sandbox is the host's small sandbox
# helper (package sandbox alone, so that each shim start pays little for it). grpcnotrace: the
# shim does not link gRPC's x/net/trace (net/http, html/template): ~130 fewer page faults (of
# ~700) at every shim start.
binaries:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/astrid-host ./cmd/astrid-host
	$(GO) build -tags grpcnotrace -o $(BIN)/astrid-shim ./cmd/astrid-shim
	CGO_ENABLED=0 $(GO) build -o $(BIN)/astrid-sandbox ./cmd/astrid-sandbox
	CGO_ENABLED=0 $(GO) build -o $(BIN)/embed ./examples/embed

capsules:
	@for d in $(EXAMPLES); do \
		echo "GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $$d/$$(basename $$d).wasm ./$$d"; \
		GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $$d/$$(basename $$d).wasm ./$$d || exit 1; \
	done
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./sdk/go/...

run: build
	$(BIN)/astrid-host call examples/hello greet --input world --state $(STATE); echo
	$(BIN)/embed -shim $(BIN)/astrid-shim -state $(STATE) examples/hello greet "from a Go program"
	$(BIN)/astrid-host install --state $(STATE) examples/hello
	$(BIN)/astrid-host list --state $(STATE)
	$(BIN)/astrid-host run --state $(STATE) examples/

test: build
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

# Benchmarks report ratios against baselines measured in the same run.
bench: build
	$(GO) test -run '^$$' -bench 'SocketRTT|ExportCall|ColdStart|HostFunction|PublishRecvLatency|InterceptorDispatch' -benchtime 1000x -count 1 -timeout 20m ./tests/
	$(GO) test -run '^$$' -bench 'SandboxedStart' -benchtime 200x -count 1 -timeout 20m ./tests/
	$(GO) test -run '^$$' -bench 'BusThroughput' -benchtime 5x -count 1 -timeout 20m ./tests/
	$(GO) test -run '^$$' -bench 'BusNATS' -benchtime 3x -count 1 -timeout 20m ./tests/
	$(GO) test -run '^$$' -bench '^BenchmarkKV$$' -benchtime 20x -count 1 -timeout 20m ./tests/
	$(GO) test -run '^$$' -bench '^BenchmarkBoot$$' -benchtime 5x -count 1 -timeout 20m ./tests/
	$(GO) test -run '^$$' -bench '^BenchmarkIdleMemory$$' -benchtime 3x -count 1 -timeout 20m ./tests/
	$(GO) test -run '^$$' -bench 'SpawnTrue' -benchtime 200x -count 1 ./sandbox/
	$(GO) test -run '^$$' -bench 'Publish' -count 1 ./bus/
	$(GO) test -run '^$$' -bench 'Move1MiB|BenchmarkCall' -benchtime 500x -count 1 ./shim/ ./shim/internal/kernel/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./host/manifest/
	$(GO) test -run '^$$' -fuzz FuzzDecodeHookInput -fuzztime 30s ./sdk/go/
	$(GO) test -run '^$$' -fuzz FuzzParseVerdict -fuzztime 30s ./sdk/go/
	$(GO) test -run '^$$' -fuzz FuzzDecodeHostResult -fuzztime 30s ./sdk/go/

# Regenerates the committed protocol code (needs protoc from Debian's protobuf-compiler).
proto:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative shared/pb/shim.proto

clean:
	rm -rf $(BIN) examples/*/*.wasm
