#!/usr/bin/env bash
# Installs what strata's tour, tests and benchmarks need, only when missing:
# npm packages (npm ci) and Debian packages (ostree for interop, debootstrap
# for real root filesystems, attr for xattr tools in tests, xz-utils and zstd
# to read compressed tarballs, 7zip to compress static delta parts faster,
# nginx to serve a repository as a plain static web server would,
# libsodium23 and python3 to check our ed25519 signatures
# against libsodium, the library ostree signs with, postgresql for the fleet
# server's PostgreSQL tests (the tests start their own cluster), chromium and
# a font for the dashboard's browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."

# A symlinked node_modules belongs to another checkout (a git worktree
# sharing it): npm ci would empty the directory it points to, so leave it be.
if [ -L node_modules ]; then
  :
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

missing=()
command -v ostree >/dev/null || missing+=(ostree)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v getfattr >/dev/null || missing+=(attr)
command -v xz >/dev/null || missing+=(xz-utils)
command -v zstd >/dev/null || missing+=(zstd)
command -v 7zz >/dev/null || missing+=(7zip)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v python3 >/dev/null || missing+=(python3)
ldconfig -p 2>/dev/null | grep -q 'libsodium\.so\.23' || missing+=(libsodium23)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-deps: need Debian packages ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  # Installing nginx must not start a system web server: tests run their own
  # on a loopback port. A policy-rc.d that answers 101 keeps services down.
  policy=/usr/sbin/policy-rc.d
  added_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
    trap '[ -n "$added_policy" ] && rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
