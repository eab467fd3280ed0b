#!/usr/bin/env bash
# Stops a mock teacher started by tests/mock/mock_up.sh: SIGTERM, up to 10 s for a clean exit,
# then SIGKILL. Quiet and successful when none is running.
set -euo pipefail
state=${TMPDIR:-/tmp}/understudy-mock
while [ $# -gt 0 ]; do
  case "$1" in
    --state) state=$2; shift 2 ;;
    -h|--help) echo "usage: tests/mock/mock_down.sh [--state DIR]"; exit 0 ;;
    *) echo "mock_down: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[ -s "$state/mock.pid" ] || exit 0
pid=$(cat "$state/mock.pid")
# Only a process that is our mock: a stale pid file must not kill some other program.
if kill -0 "$pid" 2>/dev/null && grep -qa us_mock_teacher "/proc/$pid/cmdline" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "mock_down: pid $pid ignored SIGTERM for 10 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
fi
rm -f "$state/mock.pid" "$state/mock.port" "$state/mock.url"
