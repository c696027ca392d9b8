import { spawnSync } from 'node:child_process'
import { expect, test } from '@playwright/test'
import { goldenIds as readGolden } from '../testing/golden.ts'

const goldenIds = readGolden()

// `tabmesh generate --backend wasm|webgpu|auto` runs the generation in headless Chromium

const siteDir = process.env.TABMESH_SITE_DIR
const tabmesh = (args: string[]) => spawnSync(process.execPath, ['src/nodejs/cli/bin.mjs', ...args], {
  encoding: 'utf8', timeout: 180_000, env: { ...process.env, ...(siteDir ? { TABMESH_SITE_DIR: siteDir } : {}) },
})

for (const backend of ['wasm', 'webgpu', 'auto']) {
  test(`tabmesh generate --backend ${backend} prints the golden`, async () => {
    const r = tabmesh(['generate', '--backend', backend, '--prompt', '', '--max-tokens', '64', '--temperature', '0', '--json'])
    expect(r.stderr).toBe('')
    const out = JSON.parse(r.stdout)
    expect(out.backend).toEqual(backend === 'auto' ? expect.stringMatching(/^(wasm|webgpu|ref)$/) : backend)
    expect([...out.promptTokens, ...out.tokens]).toEqual(goldenIds)
    expect(out.text).toMatch(/^Once upon a time, there was a little girl named Lily\./)
  })
}

test('a browser backend with a model file instead of an id is a clear user error', () => {
  const r = tabmesh(['generate', '--backend', 'wasm', '--model', 'some/file.bin'])
  expect(r.status).toBe(2)
  expect(r.stderr).toMatch(/give --model a model id/)
})
