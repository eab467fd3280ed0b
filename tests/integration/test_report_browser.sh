#!/usr/bin/env bash
# report.html renders in headless Chromium: the sample report written by tests/unit/test_report
# (REPORT_OUT) loads with no console message of any kind (a script-free page under a CSP of
# default-src 'none' has none, so any message means an injected script, a blocked fetch or broken
# markup), its five inline SVG charts are in the rendered DOM with drawn content, no <script> or
# <img> element exists, and a screenshot is taken (kept in the build folder to look at).
# A canary page with a console error first proves the console check can fail.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  echo "SKIP: Chromium not found at $CHROMIUM (scripts/test.sh installs Debian's chromium)"
  exit 77
fi
bin="${US_BINARY_DIR:?US_BINARY_DIR not set}/tests/test_report"
[ -x "$bin" ] || { echo "FAIL: $bin is not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

# Every run gets a new empty profile; nothing leaves the machine.
chrome() {
  local profile
  profile=$(mktemp -d "$tmp/profile.XXXXXX")
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" "$@"
}

# Console messages appear in Chromium's stderr log as "...:CONSOLE:<line>] "<text>", source: ...".
console_lines() { grep -E ':CONSOLE[:(]' "$1" || true; }

echo "== canary: a page with a console error must be detected"
printf '<!DOCTYPE html><html><body><p>canary</p><script>console.error("canary-error")</script></body></html>\n' >"$tmp/canary.html"
chrome --enable-logging=stderr --v=0 --dump-dom "file://$tmp/canary.html" >"$tmp/canary.dom" 2>"$tmp/canary.log" || true
console_lines "$tmp/canary.log" | grep -q canary-error ||
  fail "the console check cannot see console messages (Chromium's log format changed?)"

echo "== writing the sample report"
REPORT_OUT="$tmp/report" "$bin" >"$tmp/unit.log" 2>&1 || { cat "$tmp/unit.log"; fail "test_report failed"; }
page="$tmp/report/report.html"
[ -s "$page" ] || fail "no report.html written"

echo "== rendering report.html"
chrome --enable-logging=stderr --v=0 --dump-dom "file://$page" >"$tmp/dom.html" 2>"$tmp/console.log" ||
  fail "chromium exited with an error: $(tail -5 "$tmp/console.log")"
messages=$(console_lines "$tmp/console.log")
[ -z "$messages" ] || fail "console messages while loading the report:
$messages"

charts=$(grep -o '<svg class="chart' "$tmp/dom.html" | wc -l)
[ "$charts" -ge 5 ] || fail "expected at least 5 SVG charts in the DOM, found $charts"
for name in 'F1 per label' 'Cascade: coverage' 'Total cost against requests served' \
            'Training and validation loss' 'Validation accuracy'; do
  grep -q "aria-label=\"$name" "$tmp/dom.html" || fail "chart \"$name\" missing from the DOM"
done
paths=$(grep -o '<path class="series"[^>]* d="M' "$tmp/dom.html" | wc -l)
[ "$paths" -ge 8 ] || fail "expected drawn chart lines, found $paths"
grep -q '<circle class="mark"' "$tmp/dom.html" || fail "the break-even point is not marked"
if grep -qiE '<script|<img' "$tmp/dom.html"; then fail "a <script> or <img> element exists in the DOM"; fi
grep -q '&lt;script&gt;alert(1)&lt;/script&gt;' "$tmp/dom.html" || fail "the hostile label is not shown as text"

echo "== screenshot"
chrome --hide-scrollbars --window-size=1200,2400 --screenshot="$tmp/report.png" "file://$page" \
  >/dev/null 2>"$tmp/shot.log" || fail "screenshot failed: $(tail -5 "$tmp/shot.log")"
size=$(stat -c %s "$tmp/report.png")
[ "$size" -gt 20000 ] || fail "the screenshot is suspiciously small ($size bytes)"
cp "$tmp/report.png" "$US_BINARY_DIR/report_screenshot.png"
cp "$page" "$US_BINARY_DIR/report_sample.html"
echo "ok: $charts charts, $paths lines, no console messages; screenshot in $US_BINARY_DIR/report_screenshot.png"
