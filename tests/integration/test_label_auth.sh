#!/usr/bin/env bash
# Issue 2, test 5: a rejected key (401, 403, or a wrong key for a server that checks it) stops
# `label` at once, with a message naming the environment variable that holds the key; a 404
# stops it with the URL and the model. Nothing is retried in a loop and nothing is billed.
. "$(dirname "$0")/lib.sh"

N=200
C=8
gen_prompts "$N" "$WORK/prompts.jsonl"
start_teacher
write_config "$WORK/config.json" teacher.concurrency=$C
expect_ok prompts prompts "$WORK/config.json"
stop_mock

# label_stops NAME STATUS_WORDS...: runs label, expects a quick non-zero exit with few requests.
label_stops() {
  local name=$1
  local t0=$SECONDS
  run_us "$name" label "$WORK/config.json" "${@:2}"
  [ "$RC" -ne 0 ] || { show "$WORK/$name.out" "$WORK/$name.err"; fail "$name: label exited 0"; }
  if [ "$RC" -eq 3 ] || [ "$RC" -eq 130 ]; then fail "$name: exit status $RC is not an error"; fi
  assert_le "$((SECONDS - t0))" 15 "$name: seconds before the stop"
  assert_le "$(mock_stats requests)" $((2 * C)) "$name: requests sent before stopping"
  assert_eq "$(mock_stats billed)" 0 "$name: answers billed"
  assert_grep "$WORK/$name.err" "understudy: error:" "$name: error line"
}

for status in 401 403; do
  note "every request gets $status"
  start_teacher --fail-status $status
  write_config "$WORK/config.json" teacher.concurrency=$C
  label_stops "fail$status"
  assert_grep "$WORK/fail$status.err" 'the key in \$?OPENAI_API_KEY was rejected' \
    "$status: the message names the variable"
  stop_mock
done

note "a server that checks the key, with a wrong key in a custom variable"
MY_TEACHER_KEY="sk-wrong-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
export MY_TEACHER_KEY
start_teacher --require-key "sk-right-0123456789"
write_config "$WORK/config.json" teacher.concurrency=$C teacher.api_key_env='"MY_TEACHER_KEY"'
label_stops wrongkey
assert_grep "$WORK/wrongkey.err" 'the key in \$?MY_TEACHER_KEY was rejected' \
  "wrong key: the message names the configured variable"
assert_eq "$(db_targets)" 0 "targets stored after a rejected key"

note "the same server accepts the right key (so the check above can fail)"
MY_TEACHER_KEY="sk-right-0123456789" expect_ok rightkey label "$WORK/config.json"
assert_eq "$(db_unlabelled)" 0 "unlabelled prompts with the right key"
stop_mock

note "an unknown model: 404 names the URL and the model"
rm -rf "$WORK/out"
start_teacher --models real-model
write_config "$WORK/config.json" teacher.concurrency=$C teacher.model='"no-such-model"'
expect_ok prompts2 prompts "$WORK/config.json"
label_stops notfound
assert_grep "$WORK/notfound.err" "no-such-model" "404: the message names the model"
assert_grep "$WORK/notfound.err" "127\.0\.0\.1:$MOCK_PORT" "404: the message names the URL"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;')" 0 "calls stored after a 404"
stop_mock

note "no server at the URL: stops with a message instead of burning every retry"
rm -rf "$WORK/out"
write_config "$WORK/config.json" teacher.concurrency=$C   # MOCK_URL now names a closed port
expect_ok prompts3 prompts "$WORK/config.json"
start=$SECONDS
run_us dead label "$WORK/config.json"
[ "$RC" -eq 1 ] || { show "$WORK/dead.err"; fail "unreachable teacher: exit $RC, expected 1"; }
assert_le $((SECONDS - start)) 60 "seconds before giving up on an unreachable teacher"
assert_grep "$WORK/dead.err" "cannot reach the teacher at http://127\.0\.0\.1:$MOCK_PORT" \
  "unreachable: the message names the URL"
assert_grep "$WORK/dead.err" "teacher.base_url" "unreachable: the message says what to check"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;')" 0 "calls stored with no server"
echo "PASS: $TEST_NAME"
