// Where headless Chromium is and how it must start to give WebGPU on SwiftShader (the CLI's second
// host and the e2e tests): flags from the project's set-up notes.

/** Debian's chromium; MOEFY_CHROMIUM names another. */
export const CHROMIUM = process.env.MOEFY_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader',
  '--use-angle=swiftshader', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run',
];
