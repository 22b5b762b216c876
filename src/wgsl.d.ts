// WGSL files are imported as their source text: Vite through the plugin in vite.config.ts,
// Node through bin/wgsl-loader.mjs, esbuild bundles with --loader:.wgsl=text.
declare module '*.wgsl' {
  const source: string;
  export default source;
}
