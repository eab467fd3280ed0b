#!/usr/bin/env bash
# The demo, end to end on a fresh Debian 12 machine: installs what is missing, builds, starts a
# local stand-in for the teacher API on loopback, and runs `understudy run configs/demo.json`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
US_BUILD_DIR=build scripts/build.sh
bin=build/understudy
mock=build/tests/us_mock_teacher

work=$(mktemp -d)
trap 'kill "$mock_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# The stand-in teacher answers each demo message with its intended intent, with a little
# disagreement, as a real teacher would have; it bills realistic token counts.
sed 's/"label":/"answer":/' demo/messages.jsonl >"$work/answers.jsonl"
"$mock" --port 0 --port-file "$work/port" --answers "$work/answers.jsonl" \
  --template $'Classify this message into one of: {labels}.\nAnswer with the label only.\n\nMessage:\n{text}' \
  --labels "$(tr -d '[]" \n' <demo/labels.json)" --answer-noise 0.05 --quiet --die-with-parent &
mock_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
echo "understudy demo: the teacher here is a local stand-in on http://127.0.0.1:$port/v1."
echo "  To use a real API: set teacher.base_url and teacher.model in configs/demo.json (or"
echo "  --set teacher.base_url=https://api.openai.com/v1) and export OPENAI_API_KEY."
echo
"$bin" run configs/demo.json --set "teacher.base_url=http://127.0.0.1:$port/v1" "$@"
echo
echo "Open out/demo/report.html in a browser for the full report."
