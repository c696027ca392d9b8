/**
 * Renders the PWA's PNG icons from public/icon.svg with headless Chromium (no image package):
 * 192 and 512 px, and a 512 px maskable one (full-bleed background, mark inside the safe zone).
 * Run: npx tsx tools/make-icons.ts
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { chromium } from 'playwright-core'
import { chromiumLaunchOptions } from '../src/nodejs/chromium.ts'

const root = resolve(import.meta.dirname, '../..')
const svg = readFileSync(resolve(root, 'public/icon.svg'), 'utf8')
const mark = svg.replace(/^<svg[^>]*>/, '').replace(/<\/svg>\s*$/, '').replace(/<rect[^>]*\/>/, '')
const maskable = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" fill="#1d2b4f"/><g transform="translate(12.8 12.8) scale(0.6)">${mark}</g></svg>`

const browser = await chromium.launch(chromiumLaunchOptions)
try {
  const page = await browser.newPage()
  for (const [name, source, size] of [['icon-192.png', svg, 192], ['icon-512.png', svg, 512], ['icon-maskable-512.png', maskable, 512]] as const) {
    await page.setViewportSize({ width: size, height: size })
    await page.setContent(`<style>html,body{margin:0;background:transparent}svg{display:block;width:${size}px;height:${size}px}</style>${source}`)
    await page.locator('svg').screenshot({ path: resolve(root, 'public/icons', name), omitBackground: true })
    console.log(`public/icons/${name}`)
  }
} finally {
  await browser.close()
}
