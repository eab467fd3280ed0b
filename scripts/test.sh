#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the normal build, then the whole suite
# again under AddressSanitizer and UndefinedBehaviorSanitizer. Warnings are errors. First the
# folder order of docs/architecture.md and .clang-format are checked on every C file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc)
# the npm packages some tests install (pinned) go to one folder both passes share
export US_NPM_DIR=${US_NPM_DIR:-$PWD/build/npm}
echo "== layering and format"
python3 scripts/check_layers.py
scripts/check_format.sh
echo "== build (warnings as errors)"
US_BUILD_DIR=build scripts/build.sh -DUS_WERROR=ON
echo "== tests"
ctest --test-dir build --output-on-failure -j"$jobs"
echo "== build with ASan + UBSan"
US_BUILD_DIR=build-sanitize scripts/build.sh -DUS_WERROR=ON -DUS_SANITIZE=ON
echo "== tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-sanitize --output-on-failure -j"$jobs"
