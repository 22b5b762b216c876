// One tokenizer interface for every checkpoint format: tokenizer.json (tokenizer-hf.ts), llama2.c
// tokenizer.bin and GGUF's embedded vocabulary (both SentencePiece-style, tokenizer-spm.ts).
import type { ModelConfig } from './config.ts';
import { CheckpointError } from './source.ts';

export interface Tokenizer {
  /** The file it was read from (named in errors). */
  name: string;
  /** `bos` (default true) puts the BOS token first, as the tokenizer's own format does it. */
  encode(text: string, opts?: { bos?: boolean }): number[];
  /** The text of a whole sequence; BOS/EOS are left out, so decode(encode(x)) == x. */
  decode(ids: readonly number[]): string;
  /**
   * One token's text for display after `prevId` (a leading space is dropped at the start of the text).
   * Tokens that hold part of a UTF-8 character cannot be shown alone: stream text by decoding the
   * growing id list instead.
   */
  decodeToken(id: number, prevId?: number): string;
  bosId: number;
  eosId: number;
  /** One more than the largest id it can produce. */
  vocabSize: number;
}

/**
 * Throws, naming the tokenizer file, when its vocabulary and the model's embedding disagree. Some HF
 * models pad the embedding past the tokenizer (Qwen2: 151936 rows for 151665 tokens); `allowPadded`
 * accepts a tokenizer smaller than the model (never larger: its ids would index past the embedding).
 */
export function checkTokenizer(tok: Tokenizer, config: ModelConfig, opts: { allowPadded?: boolean } = {}): void {
  const ok = tok.vocabSize === config.vocabSize || (opts.allowPadded === true && tok.vocabSize < config.vocabSize);
  if (!ok) {
    throw new CheckpointError(
      tok.name,
      `tokenizer vocabulary has ${tok.vocabSize} tokens but the model's vocab_size is ${config.vocabSize}: ` +
        'the tokenizer does not belong to this model',
    );
  }
}
