#!/usr/bin/env bash
# Install everything libtrace needs on a Debian 12 machine, as root.  Idempotent:
# a second run installs nothing new.  Used by the README and by .ci/run.
set -euo pipefail

# System packages.
#  clang, llvm, libbpf-dev  build the BPF objects (libbpf-dev brings bpf_helpers.h)
#  libbpf1                  the loader the Python binding calls through ctypes
#  bpftool                  the tests check that nothing stays loaded after exit
#  redis-server/-tools      the overhead benchmark's real request/response workload
#  tshark, tcpdump          packet oracles for the capture tests and fixtures
#  qemu-system-x86, busybox-static, kmod, cpio   the kernel matrix (guests, initramfs, depmod)
APT_PACKAGES=(
  clang llvm libbpf-dev libbpf1 bpftool
  redis-server redis-tools
  tcpdump
  qemu-system-x86 busybox-static kmod cpio zstd xz-utils
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python tooling for the test runner; the package's own dependencies come with tox.
python3 -m pip install -q tox
echo "install-deps: done"
