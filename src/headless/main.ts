import type { BackendName } from '../engine/engine.ts'
import { generateTokens } from '../engine/generate.ts'
import { startEngineWorker } from '../engine/worker-engine.ts'
import { DEFAULT_MODEL_ID } from '../model/registry.ts'
import { fetchRegistry, loadRemoteTokenizer } from '../model/remote.ts'

/**
 * What the CLI drives in headless Chromium: the same engine worker and generation code as the
 * site, called through page.evaluate. Results are plain JSON.
 */
export interface HeadlessGenerateRequest {
  model?: string
  prompt: string
  maxTokens: number
  temperature: number
  topP: number
  seed: number
  backend: BackendName | 'auto'
}

async function generate(r: HeadlessGenerateRequest) {
  const base = location.origin + '/'
  const registry = await fetchRegistry(base)
  const id = r.model ?? DEFAULT_MODEL_ID
  const entry = registry.models.find((m) => m.id === id)
  if (!entry) throw new Error(`the registry has no model "${id}" (it has ${registry.models.map((m) => m.id).join(', ')})`)
  const [worker, tokenizer] = await Promise.all([startEngineWorker({ baseUrl: base, entry, backend: r.backend }), loadRemoteTokenizer(base, entry)])
  try {
    const engine = await worker.open()
    const promptTokens = tokenizer.encode(r.prompt)
    const tokens: number[] = []
    const started = performance.now()
    for await (const t of generateTokens(engine, promptTokens, { maxTokens: r.maxTokens, temperature: r.temperature, topP: r.topP, seed: r.seed })) tokens.push(t)
    const seconds = (performance.now() - started) / 1000
    return {
      backend: worker.loaded.backend, promptTokens, tokens,
      text: tokenizer.decode(tokens, promptTokens[promptTokens.length - 1]),
      tokensPerSecond: seconds > 0 ? tokens.length / seconds : 0,
      probe: worker.loaded.probe,
    }
  } finally {
    worker.terminate()
  }
}

const api = { generate }
export type HeadlessApi = typeof api
;(window as unknown as { tabmeshHeadless: HeadlessApi }).tabmeshHeadless = api
document.body.dataset.ready = 'true'
