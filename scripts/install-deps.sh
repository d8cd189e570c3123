#!/usr/bin/env bash
# install-deps.sh: install everything cellblock needs to build, test and run, with apt-get.
#
# Idempotent: asks dpkg which packages are missing and installs only those; runs `apt-get update`
# only when something is missing. Uses sudo when not root. Debian 12 (bookworm) package names.
set -euo pipefail

PACKAGES=(
    # build
    build-essential cmake pkg-config git
    # libraries
    libzmq3-dev libczmq-dev libjansson-dev libssl-dev libseccomp-dev
    # kernels and real Jupyter peers used by tests, the demo and the benchmarks
    python3 python3-ipykernel python3-jupyter-client python3-matplotlib python3-pandas
    python3-numpy jupyter-console python3-jupyter-kernel-test python3-pexpect
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    log "this script needs a Debian-family system (dpkg-query and apt-get); install by hand:"
    log "  ${PACKAGES[*]}"
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    log "all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

SUDO=()
if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1; then
        log "not root and sudo is missing; as root run: apt-get install ${missing[*]}"
        exit 1
    fi
    SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
log "missing: ${missing[*]}"
log "running apt-get update"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
log "running apt-get install"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq "${missing[@]}" >&2
log "installed: ${missing[*]}"
