// "Fine-tune 0 steps = llama.cpp on the input file": loads a pretrained-style GGUF in llama.cpp
// (node-llama-cpp) and compares its logits, step by step on the same token ids, with
// `understudy generate FILE.gguf --trace` (understudy's import of the same file). Prints one JSON
// line. Environment: NLC_DIR (the npm folder), TRACE (the trace JSON), MODEL (the GGUF),
// PROMPT (the prompt the trace was made from).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const mod = (p) => import(pathToFileURL(path.join(process.env.NLC_DIR, 'node_modules', p)).href);
const nlc = await mod('node-llama-cpp/dist/index.js');
const trace = JSON.parse(fs.readFileSync(process.env.TRACE, 'utf8'));
const V = trace.logits[0].length;
const llama = await nlc.getLlama({
  gpu: false, build: 'never', usePrebuiltBinaries: true, progressLogs: false,
  logLevel: nlc.LlamaLogLevel.error, maxThreads: 1,
});
const out = {};
try {
  const model = await llama.loadModel({ modelPath: process.env.MODEL, gpuLayers: 0 });
  out.n_vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  // f32 key/value cache and no flash attention, so f32 compares closely (as gguf_llama.mjs)
  const ctx = await model.createContext({
    contextSize: 128, batchSize: 128, threads: 1, flashAttention: false,
    experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
  });
  const seq = ctx.getSequence();
  // understudy's ids: the prompt in the model's chat format, then its greedy continuation
  const ids = trace.input.concat(trace.output.slice(0, -1));
  const input = ids.map((t, i) => (i >= trace.input.length - 1 ? [t, { generateNext: { logits: true } }] : t));
  const res = await seq.controlledEvaluate(input);
  let maxDiff = 0, maxAbs = 0, sameArgmax = true;
  for (let k = 0; k < trace.output.length; k++) {
    const map = res[trace.input.length - 1 + k].next.logits;
    const ref = trace.logits[k];
    let best = -1;
    for (const [t, v] of map) {
      maxDiff = Math.max(maxDiff, Math.abs(v - ref[t]));
      maxAbs = Math.max(maxAbs, Math.abs(ref[t]));
      if (best < 0 || v > map.get(best)) best = t;
    }
    if (best !== trace.output[k]) sameArgmax = false;
  }
  out.steps = trace.output.length;
  out.logits_max_abs_diff = maxDiff;
  out.logits_max_abs = maxAbs;
  out.same_greedy = sameArgmax;
  // llama.cpp's tokeniser (smollm pre-tokeniser) on the prompt in the file's ChatML template,
  // control tokens parsed: the same ids understudy fed its model
  // (BOS_TEXT: the BOS token's text, for files that add one)
  const rendered = `${process.env.BOS_TEXT || ''}<|im_start|>user\n${process.env.PROMPT}<|im_end|>\n<|im_start|>assistant\n`;
  out.tokenize_same = JSON.stringify(model.tokenize(rendered, true)) === JSON.stringify(trace.input);
  if (!out.tokenize_same) out.llama_tokens = model.tokenize(rendered, true);
  await ctx.dispose();
  await model.dispose();
} catch (e) {
  out.error = String((e && e.stack) || e);
}
console.log(JSON.stringify(out));
await llama.dispose();
