#!/usr/bin/env bash
# understudy on SNIPS slot filling (../shared/data/snips, its own train/test split pinned), a
# generate task: the mock teacher on loopback answers each utterance with its slots as a compact
# JSON object built from the gold BIO tags (a slot name that occurs twice keeps its first value).
# Prints the headline, then exact match and slot-level F1 (json_field_f1) on the test split; the
# report is in out/snips-slots/. Extra arguments go to `understudy run` (e.g.
# --set student.steps=500). US_BUILD_DIR picks the build folder (default build/); CONFIG the
# config (default configs/snips-slots.json; configs/snips-slots-auto.json sets nothing but the
# data and the teacher, so the student follows the defaults: "auto" size, 10 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data/snips
for f in train/seq.in train/seq.out test/seq.in test/seq.out; do
  if [ ! -f "$data/$f" ]; then
    echo "understudy: skipping snips: $data/$f is absent (it sits beside the repository in CI)" >&2
    exit 0
  fi
done
build=${US_BUILD_DIR:-build}
scripts/deps.sh build
US_BUILD_DIR=$build scripts/build.sh
work=$(mktemp -d)
trap 'kill "$mock_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# The stand-in teacher's answer for each utterance: its gold slots as JSON, keys in order of
# appearance, values the tagged words joined by single spaces.
python3 - "$data" "$work/answers.jsonl" <<'PY'
import json, sys

def slots(words, tags):
    pairs, name, value = [], None, []
    for word, tag in zip(words, tags):
        if tag.startswith("I-") and name == tag[2:]:
            value.append(word)
            continue
        if name:
            pairs.append((name, " ".join(value)))
        name, value = (tag[2:], [word]) if tag[:2] in ("B-", "I-") else (None, [])
    if name:
        pairs.append((name, " ".join(value)))
    first = {}
    for k, v in pairs:
        first.setdefault(k, v)
    return first

with open(sys.argv[2], "w", encoding="utf-8") as out:
    for split in ("train", "test"):
        with open(f"{sys.argv[1]}/{split}/seq.in", encoding="utf-8") as fi, \
             open(f"{sys.argv[1]}/{split}/seq.out", encoding="utf-8") as fo:
            for text, tags in zip(fi, fo):
                answer = json.dumps(slots(text.split(), tags.split()), ensure_ascii=False,
                                    separators=(",", ":"))
                out.write(json.dumps({"text": text.strip(), "answer": answer},
                                     ensure_ascii=False) + "\n")
PY
"$build/tests/us_mock_teacher" --port 0 --port-file "$work/port" --answers "$work/answers.jsonl" \
  --quiet --die-with-parent &
mock_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
config=${CONFIG:-configs/snips-slots.json}
"$build/understudy" run "$config" \
  --set "teacher.base_url=http://127.0.0.1:$(cat "$work/port")/v1" "$@"
report=out/$(python3 -c 'import json, os, sys; print(os.path.basename(json.load(open(sys.argv[1]))["output"]))' "$config")/report.json
python3 - "$report" <<'PY'
import json, sys
g = json.load(open(sys.argv[1])).get("generation") or {}
if not g:
    sys.exit("understudy: no generation metrics in " + sys.argv[1])
print("snips: exact match %.1f%%, slot F1 (json_field_f1) %.1f%% on %d test utterances" %
      (100 * g["exact_match"], 100 * g.get("json_field_f1", 0), g["n"]))
PY
