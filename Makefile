# A thin layer over CMake. Everything real lives in CMakeLists.txt; this file only names the
# everyday commands:
#
#   make deps     install what building and running needs (apt-get; scripts/install-deps.sh)
#   make deps-test  also what the tests, fuzzers and benchmarks need, with the MCP tests' npm
#                 modules (scripts/install-deps.sh --test): only the targets below that test
#   make build    configure and build into build/
#   make run      build, then start `cellblock serve`: MCP over HTTP at /mcp and the Jupyter
#                 API at /api on 127.0.0.1:8888 (LISTEN=host:port to change); it prints the
#                 URL, the token and how to connect an MCP client and JupyterLab
#   make demo     build, then run the demo notebook through the cellblock CLI (outputs in out/)
#   make test     build, then run every test with ctest; then the same tests again in a second
#                 tree built with ASan and UBSan (make test-sanitize)
#   make test-release   only the first half of make test
#   make test-sanitize  only the second: build-asan/ with CB_SANITIZE=address,undefined, every
#                 test but the MCP scenarios' HTTP twins and the drivers' script tests
#                 (SAN_CTEST_ARGS), any ASan, LeakSanitizer or UBSan report failing the run
#                 (reports of child processes are collected from build-asan/sanitizer-logs/)
#   make fuzz     fuzz every harness for FUZZ_SECONDS (60) each with libFuzzer (bench/fuzz)
#   make bench    build, then run the benchmarks (bench/results/)
#   make format   clang-format every C file in place
#   make install  cmake --install build (PREFIX, default /usr/local; DESTDIR for staging)
#   make package  build the Debian package with CPack: build/cellblock_<version>_<arch>.deb
#   make clean    remove build/ and out/
#
# Options pass through to CMake:  make test CB_SANITIZE=address,undefined CB_WERROR=ON
# They are passed on every configure, so a plain `make test` after a sanitizer run builds without
# sanitizers again. With CB_SANITIZE set, make test runs the suite once, in build/ as configured.

BUILD        ?= build
BUILD_TYPE   ?= RelWithDebInfo
CB_SANITIZE  ?=
CB_WERROR    ?= OFF
LISTEN       ?= 127.0.0.1:8888
JOBS         ?= $(shell nproc 2>/dev/null || echo 2)
CLANG_FORMAT ?= clang-format
SAN_BUILD    ?= build-asan
SAN_LOGS     := $(abspath $(SAN_BUILD))/sanitizer-logs
FUZZ_SECONDS ?= 60
# The sanitizer half leaves out the MCP scenarios repeated over HTTP (the same tools' code runs
# under the sanitizers in their stdio twins; mcp.http and mcp.http.shared_kernel keep HTTP's own
# code covered), and the interpreter drivers' own tests (kernels.driver.*: node, ruby and java
# scripts through driver_harness.py, no C of ours runs in them), and the browser's port-forward
# test (integration.http.forward_browser: Chromium's run of the very paths integration.http.forward
# takes under the sanitizers), and the page's browser test (integration.http.page: its plain
# HTTP part, integration.http.page_api, stays), to keep CI's total well under its limit.
# SAN_CTEST_ARGS= runs everything.
SAN_CTEST_ARGS ?= -E '^(mcp\.http\.(execute|files|commands|sessions|sandboxes|lifetimes|faults|languages|network)|kernels\.driver\..*|integration\.http\.(forward_browser|page))$$'
# A finding stops the process that has it (UBSan too) and is written to SAN_LOGS as well as
# stderr, so a report from a child process whose exit status a test ignores still fails the run.
# LeakSanitizer is on. The kernels (Debian's python3) are not instrumented and see none of this.
SAN_ENV      := ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:strict_string_checks=1:log_path=$(SAN_LOGS)/asan \
                UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(SAN_LOGS)/ubsan

PREFIX       ?= /usr/local

.PHONY: all deps deps-test configure build run demo test test-release test-sanitize fuzz bench format \
        install package clean

all: build

deps:
	scripts/install-deps.sh

deps-test:
	scripts/install-deps.sh --test

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	    -DCB_SANITIZE="$(CB_SANITIZE)" -DCB_WERROR=$(CB_WERROR)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/bin/cellblock serve --listen $(LISTEN)

demo: build
	$(BUILD)/bin/cellblock run --outputs out notebooks/demo.py

# The tests build with -Werror: a warning fails CI (make build and make run do not).
test test-release test-sanitize: CB_WERROR := ON

test: test-release
ifeq ($(strip $(CB_SANITIZE)),)
	$(MAKE) --no-print-directory test-sanitize
endif

test-release: build deps-test
	ctest --test-dir $(BUILD) --output-on-failure -j2

test-sanitize: deps-test
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCB_SANITIZE=address,undefined -DCB_WERROR=$(CB_WERROR)
	cmake --build $(SAN_BUILD) -j$(JOBS)
	rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	@rc=0; $(SAN_ENV) ctest --test-dir $(SAN_BUILD) --output-on-failure -j2 $(SAN_CTEST_ARGS) || rc=$$?; \
	if [ -n "$$(ls -A $(SAN_LOGS))" ]; then \
	    echo "test-sanitize: sanitizer reports in $(SAN_LOGS):" >&2; \
	    cat $(SAN_LOGS)/* >&2; exit 1; fi; \
	[ $$rc = 0 ] && echo "test-sanitize: no sanitizer reports"; exit $$rc

fuzz: deps-test
	bench/fuzz -t $(FUZZ_SECONDS)

bench: build deps-test
	CB_BUILD_DIR=$(BUILD) bench/run

format:
	CLANG_FORMAT=$(CLANG_FORMAT) scripts/format

clean:
	rm -rf $(BUILD) $(SAN_BUILD) build-fuzz out
