#!/usr/bin/env bash
# Issue 11: the official OpenAI Node SDK (openai on npm, pinned) talking to `understudy serve`
# with only its baseURL changed: both routes, streaming and not, each response parsed by the
# SDK's own types. Skips (77) where node or npm is missing or the package cannot be installed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"

OPENAI_NPM_VERSION=4.104.0
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "SKIP: node and npm are needed for the OpenAI SDK test"; exit 77; }
npm_dir=${US_NPM_DIR:-${US_BINARY_DIR:?}}/npm-openai-$OPENAI_NPM_VERSION # US_NPM_DIR: scripts/test.sh
if [ ! -f "$npm_dir/node_modules/openai/package.json" ]; then
  mkdir -p "$npm_dir"
  (cd "$npm_dir" && timeout 300 npm install --no-save --no-audit --no-fund --loglevel=error \
    "openai@$OPENAI_NPM_VERSION") >"$WORK/npm.log" 2>&1 ||
    { tail -n 5 "$WORK/npm.log"; echo "SKIP: npm install openai@$OPENAI_NPM_VERSION failed (offline?)"; exit 77; }
fi
export OPENAI_MODULE=$npm_dir/node_modules/openai

serve_setup 400

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
    const plainCall = async () => {
      const r = await client.chat.completions.create({ model: 'mock-teacher', messages }).withResponse();
      if (r.data.object !== 'chat.completion' || typeof r.data.id !== 'string' || !r.data.usage)
        throw new Error('not a chat.completion: ' + JSON.stringify(r.data));
      return r;
    };
    const streamCall = async () => {
      const r = await client.chat.completions
        .create({ model: 'mock-teacher', messages, stream: true, stream_options: { include_usage: true } })
        .withResponse();
      let text = '', chunks = 0, usage = null;
      for await (const chunk of r.data) {
        chunks++;
        if (chunk.usage) usage = chunk.usage;
        if (chunk.choices.length) text += chunk.choices[0].delta.content || '';
      }
      return { response: r.response, text, chunks, usage };
    };
    let p, s;
    if (process.env.STREAM_FIRST === '1') { s = await streamCall(); p = await plainCall(); }
    else { p = await plainCall(); s = await streamCall(); }
    const { data, response } = p;
    const plain = data.choices[0].message.content;
    const streamed = s.text, chunks = s.chunks, usage = s.usage;
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
# sdk NAME STREAM_FIRST: runs the client against the server at SERVE_URL; lines in $WORK/NAME.out
sdk() {
  SERVE_URL=$SERVE_URL TEXTS=$texts SYSTEM=$US_INSTRUCTIONS STREAM_FIRST=$2 \
    TEMPLATE=${US_TEMPLATE//\{labels\}/$SERVE_LABELS_JOINED} \
    node "$WORK/client.js" >"$WORK/$1.out" 2>"$WORK/$1.err" || { show "$WORK/$1.err"; fail "the SDK client failed"; }
  assert_eq "$(wc -l <"$WORK/$1.out")" 24 "one line per text"
  local line plain streamed
  while IFS= read -r line; do
    plain=$(printf '%s' "$line" | json_get plain)
    streamed=$(printf '%s' "$line" | json_get streamed)
    assert_eq "$streamed" "$plain" "the streamed answer equals the plain one"
    grep -qxF -- "$plain" <<<"$SERVE_LABELS" || fail "the answer '$plain' is not a label"
    [ "$(printf '%s' "$line" | json_get usage)" = 1 ] || fail "no usage chunk in the stream"
  done <"$WORK/$1.out"
}

note "the SDK against the student route (threshold 0), plain then streamed"
serve_start s1 --set serve.threshold=0 --set serve.audit_rate=0
sdk student 0
assert_eq "$(grep -c '"route":"student","stream_route":"student"' "$WORK/student.out")" 24 "every answer from the student"
serve_stop TERM

note "the SDK against the teacher route (threshold 1), streamed then plain"
mock_reset
serve_start s2 --set serve.threshold=1
sdk teacher 1
assert_eq "$(grep -c '"route":"cache","stream_route":"teacher"' "$WORK/teacher.out")" 24 "streamed from the teacher, then its repeat from the cache"
assert_eq "$(mock_stats requests)" 24 "one teacher request per text"
serve_stop TERM
echo "PASS: $TEST_NAME"
