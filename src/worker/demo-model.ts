// The demo model shipped with the workbench: public/demo-model/, written by scripts/train-demo.ts and
// loaded when the page opens. Constants only, so the page (state/store.ts) and the worker share them
// without the page bundling engine code.

/** The folder, relative to the page (Vite serves public/ at the site root). */
export const DEMO_PATH = 'demo-model/';

/** What the page and the model card call it. */
export const DEMO_NAME = 'demo-model (Brown Corpus)';

/** Its files, as scripts/train-demo.ts writes them (metrics.json beside them is not part of the checkpoint). */
export const DEMO_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'] as const;
