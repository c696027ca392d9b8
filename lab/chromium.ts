// The tests launch Chromium exactly as the CLI does.
export { CHROMIUM_ARGS, CHROMIUM_PATH, chromiumLaunchOptions } from '../src/nodejs/chromium.ts'
