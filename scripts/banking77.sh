#!/usr/bin/env bash
# understudy on banking77 (../shared/data/banking77, its own train/test split pinned), labelled
# by the mock teacher on loopback replaying the gold labels. Prints the headline; the report is
# in out/banking77/. Extra arguments go to `understudy run` (e.g. --set student.epochs=10).
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data/banking77
if [ ! -f "$data/train.csv" ] || [ ! -f "$data/test.csv" ]; then
  echo "understudy: skipping banking77: $data is absent (it sits beside the repository in CI)" >&2
  exit 0
fi
scripts/deps.sh build
US_BUILD_DIR=build scripts/build.sh
work=$(mktemp -d)
trap 'kill "$mock_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# The stand-in teacher's answer for each message is its gold label.
python3 - "$data" "$work/answers.jsonl" <<'PY'
import csv, json, sys
with open(sys.argv[2], "w") as out:
    for name in ("train.csv", "test.csv"):
        with open(f"{sys.argv[1]}/{name}", newline="") as f:
            for row in csv.DictReader(f):
                out.write(json.dumps({"text": row["text"], "answer": row["category"]}) + "\n")
PY
build/tests/us_mock_teacher --port 0 --port-file "$work/port" --answers "$work/answers.jsonl" \
  --template $'Classify this message into one of: {labels}.\nAnswer with the label only.\n\nMessage:\n{text}' \
  --quiet --die-with-parent &
mock_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
build/understudy run configs/banking77.json --set "teacher.base_url=http://127.0.0.1:$(cat "$work/port")/v1" "$@"
