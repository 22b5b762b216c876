// Entry of the `moefy` command (bin/moefy.mjs in a checkout; bundled as-is for GPU machines).
import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2));
