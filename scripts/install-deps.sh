#!/usr/bin/env bash
# Install everything libtrace needs on a Debian 12 machine, as root.  Idempotent:
# a second run installs nothing new.  Used by the README and by .ci/run.
set -euo pipefail

# System packages.
#  clang, llvm, libbpf-dev  build the BPF objects (libbpf-dev brings bpf_helpers.h)
#  libbpf1                  the loader the Python binding calls through ctypes
#  gcc, python3-dev         the compiled event decoder (libtrace/tracer/_ringdecode.c) and
#                           the mypyc-compiled modules (libtrace/compiled.py)
#  bpftool                  the tests check that nothing stays loaded after exit
#  redis-server/-tools      the overhead benchmark's real request/response workload
#  tshark, tcpdump          packet oracles for the capture tests and fixtures
#  nginx, nghttp2-*, dnsmasq-base, dnsutils, curl, mariadb-*, mosquitto
#                           real servers and clients of the fixtures (python -m libtrace.services.record)
#  qemu-system-x86, busybox-static, kmod, cpio   the kernel matrix (guests, initramfs, depmod)
#  docker.io, debootstrap   the Docker backend of libtrace.services: dockerd (started by libtrace
#                           with --iptables=false --bridge=none) and the minbase rootfs of its images
#  util-linux               unshare: glibc getaddrinfo against dnsmasq in a private mount namespace
#  chromium, chromium-driver  the headless browser that tests the matrix page, matrix.html
#                           (tests/matrix/test_html.py drives it with selenium)
APT_PACKAGES=(
  clang llvm libbpf-dev libbpf1 bpftool python3-dev
  redis-server redis-tools
  tcpdump tshark
  nginx nghttp2-server nghttp2-client dnsmasq-base dnsutils curl
  mariadb-server mariadb-client mosquitto
  qemu-system-x86 busybox-static kmod cpio zstd xz-utils
  make gcc flex bison bc libelf-dev libssl-dev dwarves
  docker.io debootstrap util-linux
  chromium chromium-driver
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Servers must not start as system services: tests start private instances.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python tooling for the test runner; the package's own dependencies come with tox.
python3 -m pip install -q tox

# hessian.js: an independent Dubbo 2 / hessian2 implementation, the client and oracle of
# tests/parsers/test_dubbo_hessianjs.py (Node.js from Debian when the machine has none).
if ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
peer="$(dirname "$0")/../tests/peers/hessianjs"
for attempt in 1 2 3; do
  [ -d "$peer/node_modules/hessian.js" ] && break
  npm install --prefix "$peer" --no-package-lock --no-audit --no-fund --silent \
    || { echo "install-deps: npm install failed (attempt $attempt)"; sleep 5; }
done
[ -d "$peer/node_modules/hessian.js" ] || { echo "install-deps: hessian.js not installed"; exit 1; }
echo "install-deps: done"
