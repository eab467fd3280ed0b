#!/usr/bin/env bash
# Issue 12, prices that match the invoice: a teacher that serves the requests' shared prefix from
# its prompt cache (usage.prompt_tokens_details.cached_tokens) and reasons before answering
# (usage.completion_tokens_details.reasoning_tokens) bills cached tokens at the cached price and
# reasoning tokens as output. The spend the workspace records equals what the mock billed, to
# the cent (and closer), kind by kind; the dry run estimates the caching saving; label's summary
# and the report show the kinds.
. "$(dirname "$0")/lib.sh"

N=300
IN=2.5
CACHED=0.25
OUT=10
gen_prompts "$N" "$WORK/prompts.jsonl"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl" --prompt-cache --prompt-cache-min 16 \
  --prompt-cache-step 1 --reasoning-tokens 20 --price-input $IN --price-output $OUT \
  --price-cached $CACHED
write_config "$WORK/config.json" teacher.concurrency=8 teacher.max_tokens=64 \
  teacher.price.input_per_mtok=$IN teacher.price.output_per_mtok=$OUT \
  teacher.price.cached_input_per_mtok=$CACHED
expect_ok prompts prompts "$WORK/config.json"

note "the dry run sees the shared prefix"
expect_ok dry label "$WORK/config.json" --dry-run
assert_grep "$WORK/dry.out" "prompt caching: +shared prefix ~[0-9]+ tokens a request, under the 1024" \
  "the dry run measures the shared prefix (short here: no saving at the providers' minimum)"

note "with 1,200 tokens of instructions the dry run estimates the caching saving"
long=$(awk 'BEGIN { for (i = 0; i < 1200; i++) printf "rule%d ", i % 10; }')
expect_ok dry2 label "$WORK/config.json" --dry-run --set "task.instructions=$long"
assert_grep "$WORK/dry2.out" "prompt caching: +shared prefix ~1[0-9]{3} tokens a request; ~[0-9]+ tokens from the provider's cache save ~[$][0-9.]+" \
  "the dry run's caching estimate"
expect_ok dry3 label "$WORK/config.json" --dry-run --set "task.instructions=$long" \
  --set teacher.price.cached_input_per_mtok=-1
low() { sed -n 's/^estimated cost: *\$\([0-9.]*\) to.*/\1/p' "$1"; }
awk -v a="$(low "$WORK/dry2.out")" -v b="$(low "$WORK/dry3.out")" 'BEGIN { exit !(a < b) }' ||
  fail "the low estimate does not count the caching saving: $(low "$WORK/dry2.out") vs $(low "$WORK/dry3.out")"

note "label"
expect_ok label label "$WORK/config.json"
assert_eq "$(db_unlabelled)" 0 "prompts without a target"
cached=$(mock_stats cached_tokens)
reasoning=$(mock_stats reasoning_tokens)
note "billed: $(mock_stats prompt_tokens) prompt tokens ($cached cached), $(mock_stats completion_tokens) completion tokens ($reasoning reasoning), \$$(mock_stats billed_usd)"
assert_ge "$cached" 1000 "cached prompt tokens billed (the prefix is shared and byte-identical)"
assert_eq "$reasoning" $((20 * N)) "reasoning tokens billed"
assert_eq "$(db_sum cached_tokens)" "$cached" "cached tokens recorded vs billed"
assert_eq "$(db_sum reasoning_tokens)" "$reasoning" "reasoning tokens recorded vs billed"
assert_eq "$(db_sum prompt_tokens)" "$(mock_stats prompt_tokens)" "prompt tokens recorded vs billed"
assert_eq "$(db_sum completion_tokens)" "$(mock_stats completion_tokens)" "completion tokens recorded vs billed"
spent=$(db_spend)
billed=$(mock_stats billed_usd)
note "spend recorded \$$spent, billed \$$billed"
assert_close "$spent" "$billed" "spend recorded vs billed"
[ "$(printf '%.2f' "$spent")" = "$(printf '%.2f' "$billed")" ] || fail "spend differs to the cent"
# without the cached price the spend would be higher: the cached kind really is cheaper
full=$(awk -v pt="$(mock_stats prompt_tokens)" -v ct="$(mock_stats completion_tokens)" \
  'BEGIN { printf "%.10f", pt * '$IN' / 1e6 + ct * '$OUT' / 1e6 }')
assert_le "$spent" "$full" "spend with cached tokens against the full input price"
awk -v a="$spent" -v b="$full" 'BEGIN { exit !(a < b) }' || fail "cached tokens were not cheaper"
kinds=$(db "SELECT printf('%.10f', SUM(cost_input_usd + cost_cached_usd + cost_output_usd + cost_reasoning_usd)) FROM calls;")
assert_close "$kinds" "$spent" "the kinds add up to the spend"
assert_close "$(db "SELECT printf('%.10f', SUM(cost_cached_usd)) FROM calls;")" \
  "$(awk -v c="$cached" 'BEGIN { printf "%.10f", c * '$CACHED' / 1e6 }')" "cached spend"
assert_close "$(db "SELECT printf('%.10f', SUM(cost_reasoning_usd)) FROM calls;")" \
  "$(awk -v r="$reasoning" 'BEGIN { printf "%.10f", r * '$OUT' / 1e6 }')" "reasoning spend"
assert_grep "$WORK/label.out" "tokens: $cached prompt tokens from the provider's cache, $reasoning reasoning tokens" \
  "label's summary shows the kinds"
note "the report shows spend by kind"
expect_ok run run "$WORK/config.json"
rj="$WORK/out/report.json"
[ -f "$rj" ] || rj=$(find "$WORK/out" -name report.json | head -1)
assert_close "$(json_get spend.cached_input_usd <"$rj")" \
  "$(db "SELECT printf('%.10f', SUM(cost_cached_usd)) FROM calls;")" "report: cached input spend"
assert_eq "$(json_get spend.reasoning_tokens <"$rj")" "$reasoning" "report: reasoning tokens"
assert_eq "$(json_get spend.unanswered <"$rj")" 0 "report: requests that may have been billed"
assert_eq "$(json_get data.near_duplicates <"$rj")" 0 "report: near-duplicates"
assert_grep "$(dirname "$rj")/report.md" "## Labelling spend by kind" "report.md"
echo "PASS: $TEST_NAME"
