// Lets Node run the TypeScript engine directly: tsx for .ts, our hook for .wgsl.
// Used by bin/moefy.mjs and the test runner (NODE_OPTIONS=--import ./bin/register.mjs).
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
register('./wgsl-loader.mjs', import.meta.url);
// Dawn finds SwiftShader through this when no GPU driver is installed (Debian's chromium ships it).
const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && process.env.MOEFY_SWIFTSHADER !== '0') {
  const { existsSync } = await import('node:fs');
  if (existsSync(swiftshader) && !existsSync('/dev/nvidia0') && !existsSync('/dev/dri/renderD128')) {
    process.env.VK_ICD_FILENAMES = swiftshader;
  }
}
if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp';
