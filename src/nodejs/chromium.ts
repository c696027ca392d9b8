import type { LaunchOptions } from 'playwright-core'

/**
 * Debian's Chromium, with the flags ../shared/LAB.md found necessary here: headless, no sandbox
 * (root), no background networking (the machine has no internet), WebGPU on SwiftShader, and
 * loopback WebRTC.
 */
export const CHROMIUM_PATH = process.env.TABMESH_CHROMIUM ?? '/usr/bin/chromium'

export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-quic', '--no-first-run', '--enable-unsafe-webgpu',
  '--allow-loopback-in-peer-connection', '--use-fake-ui-for-media-stream',
]

export const chromiumLaunchOptions: LaunchOptions = { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true }
