#!/usr/bin/env node
// The `moefy` CLI: runs the TypeScript engine in Node through Dawn (the `webgpu` package).
import './register.mjs';
await import('../src/cli/run.ts');
