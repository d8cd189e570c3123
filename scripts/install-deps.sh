#!/usr/bin/env bash
# install-deps.sh: install what cellblock needs to build and run, with apt-get.
#
#   scripts/install-deps.sh          build and run (make build, make run, make demo, make package)
#   scripts/install-deps.sh --test   also what only the tests, fuzzers and benchmarks use: the
#                                    real Jupyter peers, clang, node and npm, and the MCP tests'
#                                    npm packages (tests/mcp and tests/e2b, `npm ci` from
#                                    their package-lock.json)
#
# Only --test touches the npm registry, so `make run` works offline on a fresh clone once the
# Debian packages are there; installing what the tests need is `make test`'s job.
#
# The language kernels' toolchains (JavaScript, TypeScript, R, Java, Ruby, C, C++, Rust, Go) are
# run-time packages too, installed with --no-install-recommends in an apt-get call of their own
# (r-base-core with its recommends pulls in hundreds of packages); a kernel whose toolchain is
# missing is listed as unavailable, naming its package (`cellblock kernels`).
#
# Idempotent: asks dpkg which packages are missing and installs only those; runs `apt-get update`
# only when something is missing. Uses sudo when not root. Debian 12 (bookworm) package names.
# nodejs and npm are added only when the `node` or `npm` command is missing (a NodeSource nodejs,
# which bundles npm, is left alone). `npm ci` runs only when tests/X/node_modules is older than
# tests/X/package-lock.json (npm's node_modules/.package-lock.json is the stamp).
set -euo pipefail

TESTS=0
case "${1:-}" in
--test) TESTS=1 ;;
"") ;;
*) printf 'usage: %s [--test]\n' "$0" >&2; exit 2 ;;
esac

PACKAGES=(
    # build
    build-essential cmake pkg-config git
    # libraries
    libzmq3-dev libczmq-dev libjansson-dev libssl-dev libseccomp-dev libwebsockets-dev
    libhttp-parser-dev
    libvterm-dev
    # the kernels: ipykernel, and what the python-data template imports
    python3 python3-ipykernel python3-matplotlib python3-pandas python3-numpy
)
# The other languages' kernels (kernels/*/kernel.json name each in metadata.cellblock.requires).
TOOLCHAIN_PACKAGES=(
    node-typescript r-base-core r-cran-irkernel openjdk-17-jdk-headless ruby gcc g++ rustc cargo
    golang-go
)
TEST_PACKAGES=(
    # real Jupyter peers used by the tests, the demo's checks and the benchmarks
    python3-jupyter-client jupyter-console python3-jupyter-kernel-test python3-pexpect
    python3-jupyter-server python3-websocket curl
    # notebooks: every notebook made is validated by nbformat, an export re-run by nbclient
    python3-nbformat python3-nbclient
    # a real browser opens a page served from inside a sandbox (tests/http/test_forward.py)
    chromium
    # fuzzing (bench/fuzz, make fuzz): clang, and libFuzzer with clang's sanitizer runtimes
    clang libclang-rt-14-dev
    # style.format: every C file as clang-format has it
    clang-format
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

# Node for the JavaScript and TypeScript kernels: only when the command is missing.
if ! command -v node >/dev/null 2>&1; then
    TOOLCHAIN_PACKAGES+=(nodejs)
fi
# Installs at run time inside sandboxes (docs/network.md, "Packages"): pip for Python, and npm
# for the JavaScript and TypeScript kernels, only when the command is missing.
PACKAGES+=(python3-pip)
if ! command -v npm >/dev/null 2>&1; then
    TOOLCHAIN_PACKAGES+=(npm)
fi
if ((TESTS)); then
    PACKAGES+=("${TEST_PACKAGES[@]}")
    # npm for the MCP tests: only when the command is missing.
    if ! command -v npm >/dev/null 2>&1; then
        PACKAGES+=(npm)
    fi
fi

TESTS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests"

# npm ci in each of tests/mcp (the MCP SDK and Inspector) and tests/e2b (E2B's SDKs) unless its
# node_modules is newer than its lock file. A failure (no registry) stops the install: those
# tests are part of the suite. Only with --test.
install_node_modules() {
    ((TESTS)) || return 0
    local name dir lock stamp
    for name in mcp e2b; do
        dir="$TESTS_ROOT/$name" lock="$TESTS_ROOT/$name/package-lock.json"
        stamp="$TESTS_ROOT/$name/node_modules/.package-lock.json"
        [[ -f "$lock" ]] || continue
        if [[ -f "$stamp" && "$stamp" -nt "$lock" ]]; then
            log "tests/$name node modules up to date"
            continue
        fi
        if ! command -v npm >/dev/null 2>&1; then
            log "npm not found; the tests in tests/$name will be skipped"
            continue
        fi
        log "running npm ci in tests/$name"
        if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2); then
            log "npm ci in tests/$name failed (is the npm registry reachable?)"
            exit 1
        fi
        log "tests/$name node modules installed"
    done
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    log "this script needs a Debian-family system (dpkg-query and apt-get); install by hand:"
    log "  ${PACKAGES[*]}"
    log "  and, without recommends: ${TOOLCHAIN_PACKAGES[*]}"
    exit 1
fi

# The packages of "$@" that dpkg does not have installed, one a line.
not_installed() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        if [[ "$status" != "install ok installed" ]]; then
            printf '%s\n' "$pkg"
        fi
    done
}

mapfile -t missing < <(not_installed "${PACKAGES[@]}")
mapfile -t missing_toolchains < <(not_installed "${TOOLCHAIN_PACKAGES[@]}")

if ((${#missing[@]} == 0 && ${#missing_toolchains[@]} == 0)); then
    log "all $((${#PACKAGES[@]} + ${#TOOLCHAIN_PACKAGES[@]})) packages already installed"
    install_node_modules
    exit 0
fi

SUDO=()
if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1; then
        log "not root and sudo is missing; as root run:"
        ((${#missing[@]})) && log "  apt-get install ${missing[*]}"
        ((${#missing_toolchains[@]})) &&
            log "  apt-get install --no-install-recommends ${missing_toolchains[*]}"
        exit 1
    fi
    SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
log "missing: ${missing[*]} ${missing_toolchains[*]}"
log "running apt-get update"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
if ((${#missing[@]})); then
    log "running apt-get install"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq "${missing[@]}" >&2
fi
if ((${#missing_toolchains[@]})); then
    log "running apt-get install --no-install-recommends (the language toolchains)"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing_toolchains[@]}" >&2
fi
log "installed: ${missing[*]} ${missing_toolchains[*]}"
install_node_modules
