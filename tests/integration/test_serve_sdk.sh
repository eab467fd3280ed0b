#!/usr/bin/env bash
# Issue 11: the official OpenAI Node SDK (openai on npm, pinned) talking to `understudy serve`
# with only its baseURL changed: both routes, streaming and not, each response parsed by the
# SDK's own types. Skips (77) where node or npm is missing or the package cannot be installed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"

OPENAI_NPM_VERSION=4.104.0
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "SKIP: node and npm are needed for the OpenAI SDK test"; exit 77; }
npm_dir=${US_BINARY_DIR:?}/npm-openai-$OPENAI_NPM_VERSION
if [ ! -f "$npm_dir/node_modules/openai/package.json" ]; then
  mkdir -p "$npm_dir"
  (cd "$npm_dir" && timeout 300 npm install --no-save --no-audit --no-fund --loglevel=error \
    "openai@$OPENAI_NPM_VERSION") >"$WORK/npm.log" 2>&1 ||
    { tail -n 5 "$WORK/npm.log"; echo "SKIP: npm install openai@$OPENAI_NPM_VERSION failed (offline?)"; exit 77; }
fi
export OPENAI_MODULE=$npm_dir/node_modules/openai

serve_setup 400
serve_start sdk --set serve.threshold=0.6 --set serve.audit_rate=0

cat >"$WORK/client.js" <<'JS'
// Calls the server through the SDK: every text twice (plain, then streamed).
const OpenAI = require(process.env.OPENAI_MODULE);
const client = new OpenAI({ baseURL: process.env.SERVE_URL + '/v1', apiKey: 'not-needed', maxRetries: 0 });
const texts = JSON.parse(process.env.TEXTS);
(async () => {
  for (const text of texts) {
    const messages = [
      { role: 'system', content: process.env.SYSTEM },
      { role: 'user', content: process.env.TEMPLATE.replace('{text}', text) },
    ];
    const { data, response } = await client.chat.completions
      .create({ model: 'mock-teacher', messages }).withResponse();
    const plain = data.choices[0].message.content;
    if (data.object !== 'chat.completion' || typeof data.id !== 'string' || !data.usage)
      throw new Error('not a chat.completion: ' + JSON.stringify(data));
    const s = await client.chat.completions
      .create({ model: 'mock-teacher', messages, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    let streamed = '', chunks = 0, usage = null;
    for await (const chunk of s.data) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices.length) streamed += chunk.choices[0].delta.content || '';
    }
    console.log(JSON.stringify({
      route: response.headers.get('x-understudy-route'),
      stream_route: s.response.headers.get('x-understudy-route'),
      confidence: response.headers.get('x-understudy-confidence'),
      plain, streamed, chunks, usage: !!usage,
    }));
  }
})().catch((e) => { console.error(e); process.exit(1); });
JS

texts='['
for i in $(seq 1 12); do
  texts+="\"sdk message $i: my card payment was declined at the shop\","
  texts+="\"sdk hello $i, something odd about wifi and maybe my bill\","
done
texts=${texts%,}']'
note "the SDK, plain and streamed"
SERVE_URL=$SERVE_URL TEXTS=$texts SYSTEM=$US_INSTRUCTIONS \
  TEMPLATE=${US_TEMPLATE//\{labels\}/$SERVE_LABELS_JOINED} \
  node "$WORK/client.js" >"$WORK/sdk.out" 2>"$WORK/sdk.err" || { show "$WORK/sdk.err"; fail "the SDK client failed"; }
assert_eq "$(wc -l <"$WORK/sdk.out")" 24 "one line per text"
while IFS= read -r line; do
  plain=$(printf '%s' "$line" | json_get plain)
  streamed=$(printf '%s' "$line" | json_get streamed)
  assert_eq "$streamed" "$plain" "the streamed answer equals the plain one"
  printf '%s\n' "$SERVE_LABELS" | grep -qxF -- "$plain" || fail "the answer '$plain' is not a label"
  [ "$(printf '%s' "$line" | json_get usage)" = 1 ] || fail "no usage chunk in the stream"
done <"$WORK/sdk.out"
grep -q '"route":"student"' "$WORK/sdk.out" || fail "no student answer through the SDK"
grep -q '"route":"teacher"' "$WORK/sdk.out" || fail "no teacher answer through the SDK"
grep -q '"stream_route":"student"' "$WORK/sdk.out" || fail "no streamed student answer"
grep -q '"stream_route":"cache"' "$WORK/sdk.out" || fail "no streamed teacher (cached) answer"
serve_stop TERM
echo "PASS: $TEST_NAME"
