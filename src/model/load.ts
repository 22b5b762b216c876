// One entry point for any supported checkpoint: pick the loader from the files given (a folder listing
// from openDirNode, or the File objects of a browser picker wrapped with fileSource).
import { openGguf } from './gguf.ts';
import { openHf } from './hf.ts';
import { openLlama2c, readLlama2cConfig } from './llama2c.ts';
import { baseName, CheckpointError, dirName, findFile, type ByteSource } from './source.ts';
import type { Checkpoint } from './weights.ts';

/**
 * config.json → Hugging Face folder; a .gguf → GGUF; two .bin files → llama2.c (the model is the one
 * whose size matches its header, the other its tokenizer.bin).
 */
export async function openCheckpoint(files: readonly ByteSource[]): Promise<Checkpoint> {
  if (findFile(files, 'config.json')) return openHf(files);
  const ggufs = files.filter((f) => f.name.endsWith('.gguf'));
  if (ggufs.length === 1) return openGguf(ggufs[0]);
  const bins = files.filter((f) => f.name.endsWith('.bin'));
  if (bins.length === 2) {
    for (const [model, tok] of [[bins[0], bins[1]], [bins[1], bins[0]]]) {
      const isModel = await readLlama2cConfig(model).then(() => true, () => false);
      if (isModel) return openLlama2c(model, tok);
    }
    await readLlama2cConfig(bins[0].size > bins[1].size ? bins[0] : bins[1]); // throws the reason
  }
  throw new CheckpointError(
    dirName(files),
    `cannot tell the checkpoint format of ${files.map((f) => baseName(f.name)).join(', ') || 'no files'} ` +
      '(expected config.json + *.safetensors + tokenizer.json, one .gguf, or a llama2.c model .bin + tokenizer .bin)',
  );
}
