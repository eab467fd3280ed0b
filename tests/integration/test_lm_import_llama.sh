#!/usr/bin/env bash
# Issue 14, "start from a pretrained model": a tiny random llama GGUF written by an independent
# writer (make_tiny_llama.py: grouped-query attention, untied output, a byte-level BPE vocabulary
# with the smollm pre-tokeniser, a ChatML template) is
#  1. run by `understudy generate FILE.gguf` and by llama.cpp itself (node-llama-cpp, pinned):
#     "fine-tune 0 steps = llama.cpp on the input file": the same token ids for the prompt in the
#     chat template, logits within float tolerance at every step, the same greedy tokens;
#  2. fine-tuned through the real pipeline against the mock teacher with student.init and LoRA,
#     and the result generated, exported as GGUF and loaded by llama.cpp again.
# Skips (77) where python3, node or npm is missing or node-llama-cpp cannot be installed.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/llama_lib.sh"

command -v python3 >/dev/null || { echo "SKIP: python3 writes the test's GGUF"; exit 77; }
llama_cpp_setup

gguf=$WORK/tiny.gguf
python3 "$(dirname "$0")/make_tiny_llama.py" "$gguf" || fail "make_tiny_llama.py failed"

# llama.cpp against understudy on one model file; prints the script's JSON line to $2
compare() {
  local model=$1 out=$2 prompt=$3
  expect_ok "trace-$(basename "$out")" generate "$model" --prompt "$prompt" --max-tokens 8 \
    --trace "$WORK/trace.json"
  NLC_DIR=$npm_dir TRACE=$WORK/trace.json MODEL=$model PROMPT=$prompt \
    timeout 300 node "$(dirname "$0")/import_llama.mjs" >"$out" 2>"$WORK/llama.err" ||
    { show "$WORK/llama.err"; fail "the node-llama-cpp script failed on $(basename "$model")"; }
  cat "$out"
  [ -z "$(json_get error <"$out")" ] || fail "llama.cpp refused $(basename "$model"): $(json_get error <"$out")"
}

note "fine-tuning 0 steps: understudy's import against llama.cpp on the input file"
prompt=$'the cat\'s 12 hats on\n\nthe  mat!'
compare "$gguf" "$WORK/input.json" "$prompt"
assert_eq "$(json_get tokenize_same <"$WORK/input.json")" 1 \
  "llama.cpp tokenises the prompt in the chat template into understudy's ids"
assert_le "$(json_get logits_max_abs_diff <"$WORK/input.json")" 1e-4 "llama.cpp's logits are understudy's"
assert_eq "$(json_get same_greedy <"$WORK/input.json")" 1 "the same greedy tokens"

note "LoRA fine-tuning through the pipeline (student.init, student.lora_rank)"
awk 'BEGIN {
  split("cat dog hat mat", w, " ");
  for (i = 1; i <= 40; i++) {
    t = sprintf("the %s %d", w[i % 4 + 1], i);
    printf "{\"id\":\"%d\",\"text\":\"%s\"}\n", i, t > "'"$WORK"'/prompts.jsonl";
    printf "{\"text\":\"%s\",\"answer\":\"a %s\"}\n", t, w[i % 4 + 1] > "'"$WORK"'/answers.jsonl";
  }
}'
start_mock --answers "$WORK/answers.jsonl"
write_config "$WORK/config.json" 'task={"type":"generate","template":"{text}"}' \
  "student.init=\"$gguf\"" student.lora_rank=4 student.steps=30 student.batch_size=4 \
  student.warmup_steps=3 student.lm_lr=0.01 student.context=64 student.threads=1 \
  teacher.max_tokens=16
expect_ok train run "$WORK/config.json"
model=$WORK/out/student.bin
[ -s "$model" ] || fail "the run wrote no student.bin"
expect_ok gen generate "$model" --prompt "the cat 3" --max-tokens 8
expect_ok export export "$model" --format gguf -o "$WORK/tuned.gguf"
note "the fine-tuned model, exported, in llama.cpp"
compare "$WORK/tuned.gguf" "$WORK/tuned.json" "the cat 3"
assert_eq "$(json_get tokenize_same <"$WORK/tuned.json")" 1 "the export keeps the tokeniser"
assert_le "$(json_get logits_max_abs_diff <"$WORK/tuned.json")" 1e-4 "the export's logits in llama.cpp"
note "ok"
