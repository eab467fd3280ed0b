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

note "fine-tuning 0 steps: understudy's import against llama.cpp on the input file"
prompt=$'the cat\'s 12 hats on\n\nthe  mat!'
llama_compare "$gguf" "$WORK/input.json" "$prompt"
assert_eq "$(json_get tokenize_same <"$WORK/input.json")" 1 \
  "llama.cpp tokenises the prompt in the chat template into understudy's ids"
assert_le "$(json_get logits_max_abs_diff <"$WORK/input.json")" 1e-4 "llama.cpp's logits are understudy's"
assert_eq "$(json_get same_greedy <"$WORK/input.json")" 1 "the same greedy tokens"

note "LoRA fine-tuning through the pipeline (student.init, student.lora_rank)"
llama_lora_round_trip "$gguf" ""
note "ok"
