// Loads understudy's GGUF exports in llama.cpp (through node-llama-cpp) and compares them with
// the student's own greedy decode on token ids (`understudy generate --trace`). Prints one JSON
// line per file; the test script asserts on them. Environment: NLC_DIR (the npm folder),
// TRACE (the trace JSON), PROMPT, ANSWER (what `understudy generate` printed), FILES (paths,
// comma-separated, the f32 one first).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const mod = (p) => import(pathToFileURL(path.join(process.env.NLC_DIR, 'node_modules', p)).href);
const nlc = await mod('node-llama-cpp/dist/index.js');
const { Template } = await mod('@huggingface/jinja/dist/index.js');

const trace = JSON.parse(fs.readFileSync(process.env.TRACE, 'utf8'));
const V = trace.logits[0].length;
const [BOS, EOS, SEP, PAD] = [V - 4, V - 3, V - 2, V - 1];
const llama = await nlc.getLlama({
  gpu: false, build: 'never', usePrebuiltBinaries: true, progressLogs: false,
  logLevel: nlc.LlamaLogLevel.error, maxThreads: 1,
});

// Logits as a dense array from node-llama-cpp's Map (token -> logit).
const dense = (map) => {
  const a = new Float64Array(V).fill(NaN);
  for (const [t, v] of map) a[t] = v;
  return a;
};
// The student's pick: the first highest logit, never BOS, SEP or PAD.
const greedy = (a) => {
  let best = -1;
  for (let v = 0; v < V; v++)
    if (v !== BOS && v !== SEP && v !== PAD && (best < 0 || a[v] > a[best])) best = v;
  return best;
};

for (const file of process.env.FILES.split(',')) {
  const out = { file: path.basename(file) };
  try {
    const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
    const meta = model.fileInfo.metadata;
    out.architecture = meta.general.architecture;
    out.n_vocab = model.tokens.bos === BOS ? V : -1;
    out.bos = model.tokens.bos;
    out.eos = model.tokens.eos;
    // An f32 key/value cache (llama.cpp's default is f16) and no flash attention (on the CPU
    // it rounds queries to f16: logits 2e-4 off instead of 1e-6), so f32 compares exactly.
    const ctx = await model.createContext({
      contextSize: 256, batchSize: 256, threads: 1, flashAttention: false,
      experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    });
    const seq = ctx.getSequence();
    // Greedy on the student's ids, step by step, with llama.cpp's logits at every step.
    let input = trace.input.map((t, i) =>
      i === trace.input.length - 1 ? [t, { generateNext: { logits: true } }] : t);
    const produced = [];
    let maxDiff = 0, maxAbsLogit = 0;
    for (let step = 0; step < trace.output.length + 8 && produced.length < 64; step++) {
      const res = await seq.controlledEvaluate(input);
      const logits = dense(res[input.length - 1].next.logits);
      if (step < trace.logits.length && step === produced.length) {
        const ref = trace.logits[step];
        let aligned = true; // compare while the two decodes agree
        for (let k = 0; k < step; k++) if (produced[k] !== trace.output[k]) aligned = false;
        if (aligned)
          for (let v = 0; v < V; v++) {
            maxDiff = Math.max(maxDiff, Math.abs(logits[v] - ref[v]));
            maxAbsLogit = Math.max(maxAbsLogit, Math.abs(ref[v]));
          }
      }
      const tok = greedy(logits);
      produced.push(tok);
      if (tok === EOS || produced.length >= trace.output.length) break;
      input = [[tok, { generateNext: { logits: true } }]];
    }
    out.output = produced;
    out.same_tokens = JSON.stringify(produced) === JSON.stringify(trace.output);
    out.logits_max_abs_diff = maxDiff;
    out.logits_max_abs = maxAbsLogit;
    const answerIds = produced.filter((t) => t !== EOS);
    out.text = model.detokenize(answerIds, false);
    out.same_text = out.text === process.env.ANSWER;
    // llama.cpp's own tokeniser on the prompt text, and the chat template through Jinja.
    const promptIds = trace.input.slice(1, -1);
    out.tokenize_same = JSON.stringify(model.tokenize(process.env.PROMPT, false)) ===
      JSON.stringify(promptIds);
    const template = meta.tokenizer.chat_template;
    const rendered = new Template(template).render({
      messages: [{ role: 'user', content: process.env.PROMPT }],
      bos_token: model.detokenize([BOS], true), eos_token: model.detokenize([EOS], true),
      add_generation_prompt: true,
    });
    out.rendered = rendered;
    out.template_tokens_same = JSON.stringify(model.tokenize(rendered, true)) ===
      JSON.stringify(trace.input);
    await ctx.dispose();
    await model.dispose();
  } catch (e) {
    out.error = String(e && e.stack || e);
  }
  console.log(JSON.stringify(out));
}
await llama.dispose();
