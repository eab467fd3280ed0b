#!/usr/bin/env bash
# Config errors through the real binary: malformed JSON, an unknown key (with a suggestion), a
# wrong type, an out-of-range number, a missing required key, a bad --set and a missing file.
# Each prints "understudy: error:" naming the file and the key, exits 1 and creates nothing.
. "$(dirname "$0")/lib.sh"

gen_prompts 10 "$WORK/prompts.jsonl"
write_config "$WORK/good.json"

# config_error NAME FILE PATTERN... [-- extra args]: every command that takes a config fails on
# FILE with exit 1 and an error line matching each PATTERN.
config_error() {
  local name=$1 file=$2
  shift 2
  local patterns=() extra=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do patterns+=("$1"); shift; done
  [ $# -gt 0 ] && shift && extra=("$@")
  local cmd
  for cmd in prompts label "label --dry-run" "cache stats"; do
    # shellcheck disable=SC2086 # cmd is split into a command and its flags on purpose
    run_us "$name" $cmd "$file" "${extra[@]+"${extra[@]}"}"
    [ "$RC" -eq 1 ] || { show "$WORK/$name.err"; fail "$name ($cmd): exit status $RC, expected 1"; }
    assert_grep "$WORK/$name.err" "^understudy: error:" "$name ($cmd): error line"
    local p
    for p in "${patterns[@]}"; do assert_grep "$WORK/$name.err" "$p" "$name ($cmd)"; done
    [ ! -e "$WORK/out" ] || fail "$name ($cmd): a workspace was created for a broken config"
  done
}

note "malformed JSON"
sed 's/"teacher": {/"teacher": {,/' "$WORK/good.json" >"$WORK/malformed.json"
printf '{"name": "it", "task": {"labels": ["a", "b"]\n' >"$WORK/truncated.json"
config_error malformed "$WORK/malformed.json" "malformed\.json"
config_error truncated "$WORK/truncated.json" "truncated\.json"

note "unknown key, with a suggestion"
write_config "$WORK/unknown.json" teacher.modle='"gpt"'
config_error unknown "$WORK/unknown.json" "unknown\.json" "teacher\.modle" "teacher\.model"

note "wrong type"
write_config "$WORK/type.json" teacher.concurrency='"eight"'
config_error type "$WORK/type.json" "type\.json" "teacher\.concurrency"

note "out of range"
write_config "$WORK/range.json" teacher.concurrency=0
config_error range "$WORK/range.json" "range\.json" "teacher\.concurrency"
write_config "$WORK/range2.json" data.test_fraction=1.5
config_error range2 "$WORK/range2.json" "range2\.json" "data\.test_fraction"

note "missing required key"
write_config "$WORK/missing.json"
sqlite3 :memory: "SELECT json_remove(readfile('$WORK/missing.json'), '\$.teacher.model');" >"$WORK/missing2.json"
config_error missing "$WORK/missing2.json" "missing2\.json" "teacher\.model"

note "a bad --set"
config_error set_unknown "$WORK/good.json" "teacher\.bugdet_usd" -- --set teacher.bugdet_usd=5
config_error set_range "$WORK/good.json" "teacher\.budget_usd" -- --set teacher.budget_usd=-1

note "a missing file"
config_error nofile "$WORK/no-such-config.json" "no-such-config\.json"

note "the good config works (so the checks above can fail)"
expect_ok good prompts "$WORK/good.json"
[ -e "$WORK/out/understudy.db" ] || fail "no workspace after a good config"
echo "PASS: $TEST_NAME"
