#!/usr/bin/env node
// The `moefy` CLI: runs the TypeScript engine in Node through Dawn (the `webgpu` package).
import './register.mjs';
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
