#!/usr/bin/env bash
# Installs the Debian 12 packages understudy needs, if any are missing. As root it runs
# apt-get itself; otherwise it prints the exact command to run.
# Usage: scripts/deps.sh [build|test|bench|fuzz]
#   (test adds chromium, strace, clang-format and OpenMPI (libopenmpi-dev, openmpi-bin: the
#   data-parallel training tests; the build works without them); bench adds fasttext, torch, wrk
#   and nginx-light (the reference proxy of bench/bench_serve.sh; Debian starts its service on
#   port 80, `systemctl disable --now nginx` stops it); fuzz adds clang
#   and its libFuzzer and sanitizer runtimes)
set -euo pipefail
what=${1:-build}
pkgs=(build-essential cmake pkg-config libcurl4-openssl-dev libcjson-dev libsqlite3-dev sqlite3
      libopenblas-dev libssl-dev libcsv-dev libmicrohttpd-dev libcmocka-dev curl python3)
case "$what" in
  build) ;;
  test) pkgs+=(chromium strace clang-format libopenmpi-dev openmpi-bin) ;;
  bench) pkgs+=(fasttext python3-torch time linux-perf wrk nginx-light) ;;
  fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
  *) echo "usage: scripts/deps.sh [build|test|bench|fuzz]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "understudy: these Debian packages are missing: ${missing[*]}" >&2
  echo "run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "understudy: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
