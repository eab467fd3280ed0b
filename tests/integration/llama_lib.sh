# Sourced by the tests that check understudy's GGUF files against llama.cpp itself (after
# lib.sh): llama_cpp_setup installs the npm package node-llama-cpp (pinned, with its prebuilt
# linux-x64 llama.cpp binaries, and @huggingface/jinja, its renderer of chat templates) once into
# $US_NPM_DIR or else the build folder, under a lock because ctest runs these tests side by side; it sets npm_dir, or
# exits 77 (skip) with the reason where node or npm is missing or older than Node.js 20, the
# machine is not linux x64, or the packages cannot be installed (offline).
NLC_VERSION=3.22.1   # node-llama-cpp and its prebuilt @node-llama-cpp/linux-x64 (llama.cpp inside)
JINJA_VERSION=0.5.11 # @huggingface/jinja, node-llama-cpp's own Jinja renderer

llama_cpp_setup() {
  command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "SKIP: node and npm are needed for the llama.cpp test"; exit 77; }
  node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
    { echo "SKIP: node-llama-cpp $NLC_VERSION needs Node.js 20 or newer (found $(node --version))"; exit 77; }
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] ||
    { echo "SKIP: node-llama-cpp's prebuilt binaries used here are for linux x64"; exit 77; }
  # US_NPM_DIR (scripts/test.sh sets it): one install shared by the normal and sanitizer passes
  npm_dir=${US_NPM_DIR:-${US_BINARY_DIR:?}}/npm-node-llama-cpp-$NLC_VERSION
  mkdir -p "$npm_dir"
  local lock=: unlock=:
  command -v flock >/dev/null && { exec 9>"$npm_dir.lock"; lock="flock 9"; unlock="flock -u 9"; }
  $lock
  if [ ! -f "$npm_dir/node_modules/@node-llama-cpp/linux-x64/package.json" ] ||
     [ ! -f "$npm_dir/node_modules/@huggingface/jinja/package.json" ]; then
    # --ignore-scripts: no postinstall (it could download or build llama.cpp); --omit=optional:
    # only the CPU binary asked for by name, not every platform's (700 MB). All three packages in
    # one install: a later `npm install --no-save` of fewer would remove the others.
    (cd "$npm_dir" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true timeout 600 npm install --no-save \
      --no-audit --no-fund --loglevel=error --ignore-scripts --omit=optional \
      "node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION" \
      "@huggingface/jinja@$JINJA_VERSION") >"$WORK/npm.log" 2>&1 || {
      $unlock
      tail -n 5 "$WORK/npm.log"
      echo "SKIP: npm install node-llama-cpp@$NLC_VERSION failed (offline?)"
      exit 77
    }
  fi
  $unlock
}

# llama_compare MODEL OUT PROMPT [BOS_TEXT]: understudy and llama.cpp on one model file
# (import_llama.mjs: token ids, logits at every step, greedy tokens); the script's JSON line goes
# to OUT and is printed. BOS_TEXT: how the file's BOS token is written (SentencePiece: "<s>").
llama_compare() {
  local model=$1 out=$2 prompt=$3 bos=${4:-}
  expect_ok "trace-$(basename "$out")" generate "$model" --prompt "$prompt" --max-tokens 8 \
    --trace "$WORK/trace.json"
  NLC_DIR=$npm_dir TRACE=$WORK/trace.json MODEL=$model PROMPT=$prompt BOS_TEXT=$bos \
    timeout 300 node "$(dirname "$0")/import_llama.mjs" >"$out" 2>"$WORK/llama.err" ||
    { show "$WORK/llama.err"; fail "the node-llama-cpp script failed on $(basename "$model")"; }
  cat "$out"
  [ -z "$(json_get error <"$out")" ] || fail "llama.cpp refused $(basename "$model"): $(json_get error <"$out")"
}

# llama_tokenize_check: every case of $WORK/cases.jsonl (model, template, prompt, understudy's
# trace) tokenised by llama.cpp (tokenize_llama.mjs) must give understudy's ids.
llama_tokenize_check() {
  NLC_DIR=$npm_dir CASES=$WORK/cases.jsonl timeout 300 node "$(dirname "$0")/tokenize_llama.mjs" \
    >"$WORK/tokens.jsonl" 2>"$WORK/tokens.err" ||
    { show "$WORK/tokens.err"; fail "the node-llama-cpp tokenisation script failed"; }
  assert_eq "$(wc -l <"$WORK/tokens.jsonl")" "$(wc -l <"$WORK/cases.jsonl")" "one answer per case"
  if grep -v '"same":true' "$WORK/tokens.jsonl"; then
    fail "llama.cpp splits the cases above differently from understudy"
  fi
}

# llama_lora_round_trip GGUF ANSWER_TAIL [BOS_TEXT]: LoRA fine-tuning through the real pipeline
# (student.init = GGUF, the mock teacher answering "a <word><ANSWER_TAIL>"), then the student
# generated, exported as GGUF and run by llama.cpp with understudy's tokens and logits.
llama_lora_round_trip() {
  local gguf=$1 tail=$2 bos=${3:-}
  awk -v tail="$tail" 'BEGIN {
    split("cat dog hat mat", w, " ");
    for (i = 1; i <= 40; i++) {
      t = sprintf("the %s %d", w[i % 4 + 1], i);
      printf "{\"id\":\"%d\",\"text\":\"%s\"}\n", i, t > "'"$WORK"'/prompts.jsonl";
      printf "{\"text\":\"%s\",\"answer\":\"a %s%s\"}\n", t, w[i % 4 + 1], tail > "'"$WORK"'/answers.jsonl";
    }
  }'
  start_mock --answers "$WORK/answers.jsonl"
  write_config "$WORK/config.json" 'task={"type":"generate","template":"{text}"}' \
    "student.init=\"$gguf\"" student.lora_rank=4 student.steps=30 student.batch_size=4 \
    student.warmup_steps=3 student.lm_lr=0.01 student.context=64 student.threads=1 \
    teacher.max_tokens=16
  expect_ok train run "$WORK/config.json"
  local model=$WORK/out/student.bin
  [ -s "$model" ] || fail "the run wrote no student.bin"
  expect_ok gen generate "$model" --prompt "the cat 3" --max-tokens 8
  expect_ok export export "$model" --format gguf -o "$WORK/tuned.gguf"
  note "the fine-tuned model, exported, in llama.cpp"
  llama_compare "$WORK/tuned.gguf" "$WORK/tuned.json" "the cat 3" "$bos"
  assert_eq "$(json_get tokenize_same <"$WORK/tuned.json")" 1 "the export keeps the tokeniser"
  assert_le "$(json_get logits_max_abs_diff <"$WORK/tuned.json")" 1e-4 "the export's logits in llama.cpp"
}
