#!/usr/bin/env bash
# Issue 10, defect 1: a training that diverges (student.lr far too high) stops with a message that
# names the cause and the config key to lower, and never replaces a good model: student.bin stays
# byte for byte the good one and still predicts, and the workspace (curves, the "train" result)
# still describes it. The same for the language model (student.lm_lr).
. "$(dirname "$0")/lib.sh"

gen_prompts 300 "$WORK/prompts.jsonl"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/config.json" teacher.concurrency=16
expect_ok prompts prompts "$WORK/config.json"
expect_ok label label "$WORK/config.json"

# Everything the workspace says about the trained model.
train_state() {
  db "SELECT json FROM results WHERE name = 'train';"
  db "SELECT COUNT(*) FROM curves;"
  db "SELECT COUNT(*) || ' ' || COALESCE(MAX(id), 0) FROM runs WHERE command = 'train' AND status = 'ok';"
}

note "a good model"
expect_ok train1 train "$WORK/config.json"
cp "$WORK/out/student.bin" "$WORK/good.bin"
train_state >"$WORK/state.before"
printf '%s\n' 'my card was charged twice again' 'the app crashes on login' >"$WORK/new.txt"
expect_ok predict1 predict "$WORK/good.bin" --input "$WORK/new.txt"

note "a diverging train (the issue's case) fails and names the key to lower"
run_us train2 train "$WORK/config.json" --set student.lr=50 --set student.epochs=20 \
  --set student.label_smoothing=0
[ "$RC" -eq 1 ] || { show "$WORK/train2.out" "$WORK/train2.err"; fail "the diverging train exited $RC, not 1"; }
assert_grep "$WORK/train2.err" 'student\.lr: training diverged in epoch [0-9]+' "the message names the cause and the key"
assert_grep "$WORK/train2.err" 'learning rate of 50 is too high for this data; lower it' "the message names the fix"
assert_no_grep "$WORK/train2.err" 'NOT NULL constraint' "the workspace refused a NaN"
assert_no_grep "$WORK/train2.err" '[^a-z]-?nan' "no NaN printed"
cmp -s "$WORK/out/student.bin" "$WORK/good.bin" || fail "the failed train replaced student.bin"
ls "$WORK/out" | grep -v '^understudy\.db' | grep -vx 'student\.bin' >"$WORK/extra" || true
[ ! -s "$WORK/extra" ] || { cat "$WORK/extra" >&2; fail "the failed train left files behind"; }
train_state >"$WORK/state.after"
cmp -s "$WORK/state.before" "$WORK/state.after" ||
  { show "$WORK/state.before" "$WORK/state.after"; fail "the failed train changed the workspace's train records"; }
expect_ok predict2 predict "$WORK/out/student.bin" --input "$WORK/new.txt"
cmp -s "$WORK/predict1.out" "$WORK/predict2.out" || fail "the kept model predicts differently"
expect_ok train3 train "$WORK/config.json"
assert_grep "$WORK/train3.out" 'up to date' "the good model is still up to date for its config"

note "the language model: a diverging train keeps the good model too"
LM=(student.preset='"nano"' student.steps=4 student.batch_size=2 student.warmup_steps=1
  student.vocab_size=300 student.threads=1 student.checkpoint_every=2)
start_mock --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/lm.json" 'task={"type":"generate","template":"{text}"}' "${LM[@]}" \
  output="\"$WORK/lm\""
expect_ok lm_prompts prompts "$WORK/lm.json"
expect_ok lm_label label "$WORK/lm.json"
expect_ok lm_train1 train "$WORK/lm.json"
cp "$WORK/lm/student.bin" "$WORK/good_lm.bin"
expect_ok gen1 generate "$WORK/lm/student.bin" --prompt 'my card was charged twice'
# lr 1 with a weight decay of 10 multiplies every matrix by -9 a step: overflow within 40 steps
run_us lm_train2 train "$WORK/lm.json" --set student.lm_lr=1 --set student.weight_decay=10 \
  --set student.grad_clip=0 --set student.steps=200 --set student.warmup_steps=0
[ "$RC" -eq 1 ] || { show "$WORK/lm_train2.out" "$WORK/lm_train2.err"; fail "the diverging LM train exited $RC, not 1"; }
assert_grep "$WORK/lm_train2.err" 'student\.lm_lr: training diverged at step [0-9]+' "the LM message names the cause and the key"
assert_grep "$WORK/lm_train2.err" 'too high for this data; lower it' "the LM message names the fix"
cmp -s "$WORK/lm/student.bin" "$WORK/good_lm.bin" || fail "the failed LM train replaced student.bin"
ls "$WORK/lm" | grep -v '^understudy\.db' | grep -vx 'student\.bin' >"$WORK/extra" || true
[ ! -s "$WORK/extra" ] || { cat "$WORK/extra" >&2; fail "the failed LM train left files behind"; }
expect_ok gen2 generate "$WORK/lm/student.bin" --prompt 'my card was charged twice'
cmp -s "$WORK/gen1.out" "$WORK/gen2.out" || fail "the kept language model generates differently"
note "ok"
