#!/usr/bin/env bash
# Checks that every C file the repository tracks matches .clang-format (clang-format 14, as
# Debian 12 ships it). Fix with: clang-format -i $(git ls-files '*.c' '*.h')
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "check_format: clang-format is missing; run scripts/deps.sh test" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.c' '*.h')
if ! clang-format --dry-run -Werror "${files[@]}" 2>/tmp/check_format.$$; then
  grep -E '^[^ ].*: error:' /tmp/check_format.$$ | cut -d: -f1 | sort -u | sed 's/^/  /' >&2
  rm -f /tmp/check_format.$$
  echo "check_format: the files above differ from .clang-format; run:" >&2
  echo "  clang-format -i \$(git ls-files '*.c' '*.h')" >&2
  exit 1
fi
rm -f /tmp/check_format.$$
echo "check_format: ${#files[@]} C files match .clang-format"
