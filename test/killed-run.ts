// A `moefy` command killed part-way, as a crash or a power cut would stop it: for the tests that resume
// from what such a run left in its checkpoint folder.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/moefy.mjs', import.meta.url));

/** `moefy ...args`, killed with SIGKILL (its browser too: the whole process group) once the file `until` exists. */
export function killedRun(args: readonly string[], until: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { detached: true, stdio: 'ignore' });
    const poll = setInterval(() => {
      if (!existsSync(until)) return;
      clearInterval(poll);
      process.kill(-child.pid!, 'SIGKILL');
    }, 50);
    child.on('exit', (code, signal) => {
      clearInterval(poll);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`moefy ${args.join(' ')} ended (exit ${code}) before ${until} appeared`));
    });
  });
}
