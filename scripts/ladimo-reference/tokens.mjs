// Token windows for reference.py: the data folder's *.<split>.txt documents (one per line), each wrapped
// in BOS … EOS and concatenated per domain, cut into 256-token windows taken round-robin over the domains
// until `total` tokens: node tokens.mjs SHARED SPLIT TOTAL OUT.u32 [DOMAIN-PREFIX]
import { Tokenizer } from '@huggingface/tokenizers';
import fs from 'node:fs';
const [shared, split, totalArg, out, only] = process.argv.slice(2);
const total = Number(totalArg);
const m = `${shared}/models/corpus-llama-7m/`;
const tok = new Tokenizer(JSON.parse(fs.readFileSync(m + 'tokenizer.json', 'utf8')), JSON.parse(fs.readFileSync(m + 'tokenizer_config.json', 'utf8')));
const dir = `${shared}/data/corpus/`;
let files = fs.readdirSync(dir).filter((f) => f.endsWith(`.${split}.txt`)).sort();
if (only) files = files.filter((f) => f.startsWith(only));
const W = 256;
const streams = files.map((f) => {
  const ids = [];
  for (const line of fs.readFileSync(dir + f, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const enc = tok.encode(line, { add_special_tokens: false }).ids;
    ids.push(0, ...enc, 1);
    if (ids.length > total) break;
  }
  return ids;
});
const wins = [];
let n = 0;
for (let i = 0; n < total; i++) {
  let any = false;
  for (const s of streams) {
    if ((i + 1) * W <= s.length && n < total) { wins.push(s.slice(i * W, (i + 1) * W)); n += W; any = true; }
  }
  if (!any) break;
}
fs.writeFileSync(out, Buffer.from(new Uint32Array(wins.flat()).buffer));
console.log(wins.length, 'windows', n, 'tokens');
