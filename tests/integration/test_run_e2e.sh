#!/usr/bin/env bash
# Issue 3: `understudy run` end to end on a small set through the mock teacher over loopback:
# prompts -> label -> train -> eval -> report; the student learns the teacher's labels; the
# report is written and escapes user text; a rerun pays nothing and retrains nothing; predict
# answers with the trained model; an installed copy (cmake --install) builds the README's C example
# with pkg-config alone and agrees with predict.
. "$(dirname "$0")/lib.sh"

src=${US_SOURCE_DIR:?}/demo/messages.jsonl
[ -f "$src" ] || fail "missing $src"
XSS_LABEL='<script>alert(1)</script>'
# 700 demo messages; one intent renamed to a label full of markup, one message full of markup.
head -n 700 "$src" | sed "s|\"label\":\"data_usage\"|\"label\":\"$XSS_LABEL\"|" >"$WORK/prompts.jsonl"
echo '{"id":"x1","text":"\"><img src=x onerror=alert(1)> my bill is wrong again","label":"billing_dispute"}' \
  >>"$WORK/prompts.jsonl"
sed 's/"label":/"answer":/' "$WORK/prompts.jsonl" >"$WORK/answers.jsonl"
labels=$(sed -n 's/.*"label":"\([^"]*\)".*/\1/p' "$WORK/prompts.jsonl" | sort -u)
labels_json=$(printf '%s\n' "$labels" | while read -r l; do json_quote "$l"; done | paste -sd, -)

start_mock --answers "$WORK/answers.jsonl" --template "$US_TEMPLATE"
write_config "$WORK/config.json" "task.labels=[$labels_json]" teacher.logprobs=true \
  teacher.concurrency=16 teacher.params_b=100 data.label_field='"label"' \
  student.autotune_seconds=8 # the search runs and reports; its default 30 s budget is not the point here

note "run"
expect_ok run1 run "$WORK/config.json"
for f in student.bin report.md report.json report.html; do
  [ -s "$WORK/out/$f" ] || fail "run wrote no $f"
done
billed=$(mock_stats billed)
assert_eq "$billed" "$(db_prompts)" "every prompt billed exactly once"
assert_grep "$WORK/run1.out" 'agreement' "run prints the headline"
# student.autotune is on by default: one line per candidate and the winner, which the report names
assert_grep "$WORK/run1.err" 'candidate 1: defaults  valid acc [0-9.]+%' "the search prints its candidates"
assert_grep "$WORK/run1.err" 'chosen automatically: .*, validation accuracy [0-9.]+%' "and the winner"
assert_grep "$WORK/out/report.md" 'chosen automatically: .*, validation accuracy [0-9.]+%' "the report names the choice"

note "report.json"
rj=$(cat "$WORK/out/report.json")
agreement=$(printf '%s' "$rj" | json_get quality.agreement)
[ -n "$agreement" ] || { show "$WORK/out/report.json"; fail "report.json has no quality.agreement"; }
assert_ge "$agreement" 0.80 "student agreement with the teacher on the test split"
assert_le "$agreement" 1.0 "agreement is a share"
assert_eq "$(printf '%s' "$rj" | json_get schema_version)" 1 "report.json schema version"
n_test=$(db "SELECT COUNT(*) FROM prompts WHERE split = 1;")
assert_eq "$(printf '%s' "$rj" | json_get quality.n)" "$n_test" "metrics cover the test split"
grep -qF "$XSS_LABEL" "$WORK/out/report.json" || fail "report.json lost the label text"

note "report.html escapes user text"
assert_no_grep "$WORK/out/report.html" '<script>alert' "raw <script> from a label in the HTML"
assert_no_grep "$WORK/out/report.html" '<img src=x' "raw <img> from a prompt in the HTML"
assert_grep "$WORK/out/report.html" '&lt;script&gt;alert\(1\)&lt;/script&gt;' "the label shown as text"
assert_grep "$WORK/out/report.html" '<svg' "inline SVG charts"
assert_no_grep "$WORK/out/report.html" '(src|href)="https?:' "nothing loaded from the network"

note "rerun: nothing paid, nothing retrained"
requests=$(mock_stats requests)
expect_ok run2 run "$WORK/config.json"
assert_eq "$(mock_stats requests)" "$requests" "requests sent by the rerun"
assert_grep "$WORK/run2.out" 'up to date' "train says the model is up to date"
assert_eq "$(json_get data.cache_hits <"$WORK/out/report.json")" "$(db_prompts)" \
  "the report counts the rerun's answers as cache hits"

note "predict"
printf '%s\n' '{"text":"my router will not connect to the wifi"}' 'i lost my phone on the bus' \
  >"$WORK/new.txt"
expect_ok predict predict "$WORK/out/student.bin" --input "$WORK/new.txt" --top-k 3
assert_eq "$(wc -l <"$WORK/predict.out")" 2 "one line out per line in"
while IFS= read -r line; do
  label=$(printf '%s' "$line" | json_get label)
  printf '%s\n' "$labels" | grep -qxF -- "$label" || fail "predict answered an unknown label '$label'"
done <"$WORK/predict.out"

note "an installed copy: header alone, pkg-config, and the README's C example agrees with predict"
if command -v cc >/dev/null && command -v pkg-config >/dev/null && command -v cmake >/dev/null; then
  prefix=$WORK/prefix
  cmake --install "${US_BINARY_DIR:?}" --prefix "$prefix" >"$WORK/install.out" 2>&1 ||
    { show "$WORK/install.out"; fail "cmake --install failed"; }
  for f in bin/understudy include/understudy.h lib/libunderstudy.a lib/pkgconfig/understudy.pc; do
    [ -s "$prefix/$f" ] || fail "the install has no $f"
  done
  hdr=$prefix/include/understudy.h
  assert_no_grep "$hdr" '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' \
    "the installed header includes a project header"
  cc -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -x c "$hdr" 2>"$WORK/header.err" ||
    { show "$WORK/header.err"; fail "the installed understudy.h does not compile on its own"; }
  "$prefix/bin/understudy" --version >"$WORK/version.out" || fail "the installed understudy failed"
  assert_grep "$WORK/version.out" '^understudy [0-9]' "the installed binary runs"

  awk '/<!-- readme-example -->/ { on = 1; next } on && /^```c/ { grab = 1; next }
       grab && /^```/ { exit } grab { print }' "$US_SOURCE_DIR/README.md" >"$WORK/example.c"
  [ -s "$WORK/example.c" ] || fail "no C example found in README.md"
  san=()
  grep -q '^US_SANITIZE:BOOL=ON' "$US_BINARY_DIR/CMakeCache.txt" && san=(-fsanitize=address,undefined)
  # exactly the README's line: no -I or library path into the source or build tree
  flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs understudy) ||
    fail "pkg-config does not know the installed understudy"
  case "$flags" in *"$US_SOURCE_DIR"* | *"$US_BINARY_DIR"*) fail "pkg-config points into the tree: $flags" ;; esac
  (cd "$WORK" && cc "${san[@]}" example.c $flags -o example) 2>"$WORK/example.cc.err" ||
    { show "$WORK/example.cc.err"; fail "the README example does not build via pkg-config"; }
  "$WORK/example" "$WORK/out/student.bin" "i lost my phone on the bus" >"$WORK/example.out" ||
    fail "the README example failed"
  assert_eq "$(wc -l <"$WORK/example.out")" 3 "the example prints the top three labels"
  first=$(sed -n 2p "$WORK/predict.out" | json_get label)
  assert_eq "$(head -n 1 "$WORK/example.out" | cut -f1)" "$first" "example and predict agree"
  # the index is the label's place in task.labels (the order the model keeps)
  index=$(printf '%s\n' "$labels" | grep -nxF -- "$first" | cut -d: -f1)
  assert_eq "$(head -n 1 "$WORK/example.out" | cut -f3)" "$((index - 1))" "the top label's index"
  while IFS=$'\t' read -r label _ idx; do
    assert_eq "$(printf '%s\n' "$labels" | sed -n "$((idx + 1))p")" "$label" "label $idx's index"
  done <"$WORK/example.out"
  "$WORK/example" "$WORK/nope.bin" "x" 2>"$WORK/example.err" && fail "the example loaded a missing model"
  assert_grep "$WORK/example.err" 'nope\.bin' "the error names the missing model file"

  note "us_run from an installed copy: the whole pipeline in one library call"
  cat >"$WORK/run_lib.c" <<'CEOF'
#include <stdio.h>
#include <stdlib.h>
#include "understudy.h"

int main(int argc, char **argv) {
  us_err err;
  char *headline = NULL;
  const char *sets[] = {argv[2]};
  if (argc < 3) return 2;
  if (us_run(argv[1], sets, 1, NULL, &headline, &err) != US_OK) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  printf("%s\n", headline);
  free(headline);
  return 0;
}
CEOF
  (cd "$WORK" && cc "${san[@]}" run_lib.c $flags -o run_lib) 2>"$WORK/run_lib.cc.err" ||
    { show "$WORK/run_lib.cc.err"; fail "a program calling us_run does not build via pkg-config"; }
  before=$(mock_stats requests)
  lib_out="output=$(json_quote "$WORK/lib_out")"
  "$WORK/run_lib" "$WORK/config.json" "$lib_out" >"$WORK/run_lib.out" 2>"$WORK/run_lib.err" ||
    { show "$WORK/run_lib.err"; fail "us_run failed"; }
  assert_grep "$WORK/run_lib.out" 'agreement' "us_run returns the headline"
  for f in student.bin report.md report.json report.html; do
    [ -s "$WORK/lib_out/$f" ] || fail "us_run wrote no $f"
  done
  assert_eq "$(( $(mock_stats requests) - before ))" "$(db_prompts "$WORK/lib_out/understudy.db")" \
    "us_run asked the teacher once per prompt of its new workspace"
  before=$(mock_stats requests)
  "$WORK/run_lib" "$WORK/config.json" "$lib_out" >"$WORK/run_lib2.out" 2>&1 || fail "us_run rerun failed"
  assert_eq "$(mock_stats requests)" "$before" "a second us_run pays nothing"
  "$WORK/run_lib" "$WORK/nope.json" "$lib_out" 2>"$WORK/run_lib3.err" && fail "us_run ran a missing config"
  assert_grep "$WORK/run_lib3.err" 'nope\.json' "us_run's error names the missing config"
else
  note "no C compiler, pkg-config or cmake: the installed copy is not checked here"
fi

note "a missing stage is a clear error"
write_config "$WORK/fresh.json" output="$(json_quote "$WORK/fresh")"
run_us report1 report "$WORK/fresh.json"
[ "$RC" -ne 0 ] || fail "report on an empty workspace succeeded"
assert_grep "$WORK/report1.err" 'understudy: error: .*understudy eval' "report names the missing stage"
echo "PASS: $TEST_NAME"
