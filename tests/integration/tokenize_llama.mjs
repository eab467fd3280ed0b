// Tokenisation against llama.cpp (node-llama-cpp): for every case, the prompt in
// the file's chat template, rendered as llama.cpp would and tokenised by llama.cpp with special
// tokens parsed, must give the ids understudy fed its model (the "input" of its --trace).
// Environment: NLC_DIR (the npm folder), CASES (JSON lines {model, template, prompt, trace}).
// Prints one JSON line per case: {model, template, prompt, same, ours, llama}.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const mod = (p) => import(pathToFileURL(path.join(process.env.NLC_DIR, 'node_modules', p)).href);
const nlc = await mod('node-llama-cpp/dist/index.js');
const llama = await nlc.getLlama({
  gpu: false, build: 'never', usePrebuiltBinaries: true, progressLogs: false,
  logLevel: nlc.LlamaLogLevel.error, maxThreads: 1,
});
const render = {
  chatml: (p) => `<s><|im_start|>user\n${p}<|im_end|>\n<|im_start|>assistant\n`,
  'chatml-nobos': (p) => `<|im_start|>user\n${p}<|im_end|>\n<|im_start|>assistant\n`,
  llama2: (p) => `<s>[INST] ${p} [/INST]`,
  zephyr: (p) => `<s><|user|>\n${p}</s>\n<|assistant|>\n`,
};
const models = new Map();
const cases = fs.readFileSync(process.env.CASES, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
for (const c of cases) {
  const out = { model: path.basename(c.model), template: c.template, prompt: c.prompt };
  try {
    if (!models.has(c.model)) models.set(c.model, await llama.loadModel({ modelPath: c.model, gpuLayers: 0 }));
    const model = models.get(c.model);
    const ours = JSON.parse(fs.readFileSync(c.trace, 'utf8')).input;
    const theirs = Array.from(model.tokenize(render[c.template](c.prompt), true));
    out.same = JSON.stringify(ours) === JSON.stringify(theirs);
    if (!out.same) {
      out.ours = ours;
      out.llama = theirs;
    }
  } catch (e) {
    out.error = String((e && e.stack) || e);
  }
  console.log(JSON.stringify(out));
}
for (const m of models.values()) await m.dispose();
await llama.dispose();
