// Hugging Face tokenizer.json through @huggingface/tokenizers (a pure-JS port of the Rust `tokenizers`
// pipeline: normalizer → pre-tokenizer → model → post-processor, and the decoder). BOS is whatever the
// file's post-processor adds (corpus-llama-7m: TemplateProcessing "<s> $A").
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { CheckpointError, readJson, type ByteSource } from './source.ts';
import type { Tokenizer } from './tokenizer.ts';

/**
 * `configFile` is tokenizer_config.json when present (its bos_token / eos_token name the special
 * tokens); `fallback` ids (config.json's bos_token_id / eos_token_id) are used when it does not.
 */
export async function readHfTokenizer(
  file: ByteSource,
  configFile: ByteSource | undefined,
  fallback: { bosId: number; eosId: number },
): Promise<Tokenizer> {
  const json = (await readJson(file)) as Record<string, unknown>;
  const cfg = configFile ? ((await readJson(configFile)) as Record<string, unknown>) : {};
  let tok: HfTokenizer;
  try {
    tok = new HfTokenizer(json, cfg);
  } catch (e) {
    throw new CheckpointError(file.name, `cannot build the tokenizer: ${(e as Error).message}`);
  }
  const idOf = (t: unknown, fb: number): number => {
    const content = typeof t === 'string' ? t : (t as { content?: string } | null)?.content;
    const id = content === undefined ? undefined : tok.token_to_id(content);
    return id ?? fb;
  };
  const bosId = idOf(cfg.bos_token, fallback.bosId);
  const eosId = idOf(cfg.eos_token, fallback.eosId);
  let vocabSize = 0;
  for (const id of tok.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
  // decode(encode(x)) == x needs clean-up off unless the tokenizer asks for it (the library defaults on).
  const clean = cfg.clean_up_tokenization_spaces === true;
  const special = new Set([...tok.get_added_tokens_decoder()].filter(([, t]) => t.special).map(([id]) => id));

  return {
    name: file.name,
    encode: (text, opts = {}) => tok.encode(text, { add_special_tokens: opts.bos !== false }).ids,
    decode: (ids) => tok.decode([...ids], { skip_special_tokens: true, clean_up_tokenization_spaces: clean }),
    decodeToken(id, prevId) {
      if (special.has(id)) return tok.id_to_token(id) ?? '';
      if (prevId === undefined || special.has(prevId)) return tok.decode([id], { clean_up_tokenization_spaces: false });
      // The decoder may treat a token differently at the start (Metaspace drops a leading space): decode
      // it after its predecessor and keep the new text.
      const before = tok.decode([prevId], { clean_up_tokenization_spaces: false });
      return tok.decode([prevId, id], { clean_up_tokenization_spaces: false }).slice(before.length);
    },
    bosId,
    eosId,
    vocabSize,
  };
}
