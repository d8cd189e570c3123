# A thin layer over CMake. Everything real lives in CMakeLists.txt; this file only names the
# everyday commands:
#
#   make deps     install build and test dependencies (apt-get; scripts/install-deps.sh)
#   make build    configure and build into build/
#   make run      build, then start `cellblock serve`: MCP over HTTP at /mcp and the Jupyter
#                 API at /api on 127.0.0.1:8888 (LISTEN=host:port to change); it prints the
#                 URL, the token and how to connect an MCP client and JupyterLab
#   make demo     build, then run the demo notebook through the cellblock CLI (outputs in out/)
#   make test     build, then run every test with ctest
#   make bench    build, then run the benchmarks (bench/results/)
#   make format   clang-format every C file in place
#   make clean    remove build/ and out/
#
# Options pass through to CMake:  make test CB_SANITIZE=address,undefined CB_WERROR=ON
# They are passed on every configure, so a plain `make test` after a sanitizer run builds without
# sanitizers again.

BUILD        ?= build
BUILD_TYPE   ?= RelWithDebInfo
CB_SANITIZE  ?=
CB_WERROR    ?= OFF
LISTEN       ?= 127.0.0.1:8888
JOBS         ?= $(shell nproc 2>/dev/null || echo 2)
CLANG_FORMAT ?= clang-format
FORMAT_DIRS  := common kernel-gateway cli tests bench

.PHONY: all deps configure build run demo test bench format clean

all: build

deps:
	scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	    -DCB_SANITIZE="$(CB_SANITIZE)" -DCB_WERROR=$(CB_WERROR)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/cli/cellblock serve --listen $(LISTEN)

demo: build
	$(BUILD)/cli/cellblock run --outputs out notebooks/demo.py

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j2

bench: build
	CB_BUILD_DIR=$(BUILD) bench/run

format:
	@command -v $(CLANG_FORMAT) >/dev/null \
	    || { echo "format: $(CLANG_FORMAT) not found (apt-get install clang-format)" >&2; exit 1; }
	find $(wildcard $(FORMAT_DIRS)) -path '*/node_modules' -prune \
	    -o -type f \( -name '*.c' -o -name '*.h' \) -print0 | xargs -0 -r $(CLANG_FORMAT) -i

clean:
	rm -rf $(BUILD) out
