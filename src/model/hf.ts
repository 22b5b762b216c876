// A Hugging Face model folder: config.json (configFromHf), model.safetensors or a sharded
// model.safetensors.index.json (safetensors.ts), tokenizer.json (+ tokenizer_config.json).
import { configFromHf } from './config.ts';
import { openSafetensors } from './safetensors.ts';
import { baseName, CheckpointError, dirName, findFile, readJson, type ByteSource } from './source.ts';
import { checkTokenizer } from './tokenizer.ts';
import { readHfTokenizer } from './tokenizer-hf.ts';
import { checkTensors, weightIndex, type Checkpoint } from './weights.ts';

/** Opens and validates the folder's files: every tensor config.json implies, with its shape. */
export async function openHf(files: readonly ByteSource[]): Promise<Checkpoint> {
  const need = (base: string): ByteSource => {
    const f = findFile(files, base);
    if (!f) throw new CheckpointError(dirName(files), `no ${base} (files: ${files.map((x) => baseName(x.name)).join(', ')})`);
    return f;
  };
  const configFile = need('config.json');
  const config = configFromHf(await readJson(configFile), configFile.name);
  const { file, tensors } = await openSafetensors(files);
  const weights = weightIndex(config, checkTensors(tensors, config, file, 'config.json'));
  const tokenizer = await readHfTokenizer(need('tokenizer.json'), findFile(files, 'tokenizer_config.json'), config);
  checkTokenizer(tokenizer, config, { allowPadded: true });
  return { config, weights, tokenizer };
}
