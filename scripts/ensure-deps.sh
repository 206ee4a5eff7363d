#!/usr/bin/env bash
# Installs what strata's tour, tests and benchmarks need, only when missing:
# npm packages (npm ci) and Debian packages (ostree for interop, debootstrap
# for real root filesystems, attr for xattr tools in tests, xz-utils and zstd
# to read compressed tarballs).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

missing=()
command -v ostree >/dev/null || missing+=(ostree)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v getfattr >/dev/null || missing+=(attr)
command -v xz >/dev/null || missing+=(xz-utils)
command -v zstd >/dev/null || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-deps: need Debian packages ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
