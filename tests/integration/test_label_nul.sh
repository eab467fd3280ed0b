#!/usr/bin/env bash
# Issue 10, defect 5: an escaped NUL (\u0000) in a JSONL prompt is refused like a raw NUL byte
# (exit 1, file:line named), never stored cut short at the NUL.
. "$(dirname "$0")/lib.sh"

fresh() { rm -rf "$WORK/out"; }

note "defect 5: an escaped NUL in JSONL is refused like a raw NUL byte"
printf '{"text":"fine"}\n{"text":"nul\\u0000byte"}\n' >"$WORK/prompts.jsonl"
write_config "$WORK/config.json"
run_us nul_escape prompts "$WORK/config.json"
[ "$RC" -eq 1 ] || { show "$WORK/nul_escape.out" "$WORK/nul_escape.err"; fail "escaped NUL: exit $RC, expected 1"; }
assert_grep "$WORK/nul_escape.err" 'prompts\.jsonl:2: .*\\u0000' "escaped NUL: the line and the escape"
if [ -f "$WORK/out/understudy.db" ]; then
  assert_eq "$(db "SELECT COUNT(*) FROM prompts WHERE text = 'nul';")" 0 "a prompt cut at the NUL"
fi
fresh
printf '{"text":"fine"}\n{"text":"nul\0byte"}\n' >"$WORK/prompts.jsonl"
run_us nul_raw prompts "$WORK/config.json"
[ "$RC" -eq 1 ] || { show "$WORK/nul_raw.err"; fail "raw NUL: exit $RC, expected 1"; }
assert_grep "$WORK/nul_raw.err" 'prompts\.jsonl:2' "raw NUL: the line"
fresh
echo "PASS: $TEST_NAME"
