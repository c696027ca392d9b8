import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { GOLDEN_IDS, stories260K } from '../../../testing/models.ts'
import { chatRequest, parseChatFlags } from './swarm.ts'

/** The real `tabmesh` command in a child process, as a user runs it. */
function tabmesh(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [join(import.meta.dirname, 'bin.mjs'), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const tmp = mkdtempSync(join(tmpdir(), 'tabmesh-cli-'))

describe('tabmesh CLI', () => {
  it('generate --json prints the golden ids', () => {
    const r = tabmesh(['generate', '--backend', 'ref', '--prompt', '', '--max-tokens', '64', '--temperature', '0', '--json'])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.backend).toBe('ref')
    expect(out.promptTokens).toEqual([1])
    expect([1, ...out.tokens]).toEqual(GOLDEN_IDS)
    expect(out.text.startsWith('Once upon a time, there was a little girl named Lily.')).toBe(true)
    expect(out.tokensPerSecond).toBeGreaterThan(0)
  })

  it('takes explicit --model and --tokenizer files', () => {
    const r = tabmesh(['generate', '--model', stories260K.paths.weights, '--tokenizer', stories260K.paths.tokenizer, '--prompt', 'Lily', '--max-tokens', '5', '--json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout).promptTokens).toEqual([1, 317])
  })

  const userErrors: [string, string[], RegExp, NodeJS.ProcessEnv?][] = [
    ['an unknown flag', ['generate', '--bogus'], /Unknown option '--bogus'/],
    ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['a bad number', ['generate', '--max-tokens', 'many'], /--max-tokens "many" is not valid/],
    ['a missing models directory', ['generate', '--models-dir', join(tmp, 'nowhere')], /models directory .*nowhere does not exist\. Put llama2\.c models/],
    ['a missing model file', ['generate', '--model', join(tmp, 'none.bin'), '--tokenizer', stories260K.paths.tokenizer], /cannot read .*none\.bin: ENOENT/],
    ['a truncated model', ['generate', '--model', join(tmp, 'truncated.bin'), '--tokenizer', stories260K.paths.tokenizer], /header describes a 1056540-byte file but it has 400000 bytes \(truncated\)/],
    ['a mismatched tokenizer', ['generate', '--model', join(tmp, 'small-vocab.bin'), '--tokenizer', stories260K.paths.tokenizer], /has 512 tokens but the model's vocabulary has 256/],
    ['a prompt past the context window', ['generate', '--max-tokens', '600'], /needs 600 positions, but the model's context window is 512/],
    ['an unavailable backend', ['generate', '--backend', 'cuda'], /--backend cuda is not available/],
  ]
  writeFileSync(join(tmp, 'truncated.bin'), stories260K.weights.subarray(0, 400_000))
  it.each(userErrors)('reports %s clearly, with no stack trace', async (_what, args, message) => {
    if (args.includes(join(tmp, 'small-vocab.bin'))) {
      const { makeSyntheticLlama2c } = await import('../../model/formats/synthetic.ts')
      writeFileSync(join(tmp, 'small-vocab.bin'), makeSyntheticLlama2c({ dim: 16, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 256, seqLen: 16, sharedClassifier: true }, 1))
    }
    const r = tabmesh(args)
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(message)
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })

  it('chat: --prompt stays raw text; --chat and --system send it as a user message for the model\'s chat template', () => {
    const sampling = { maxTokens: 64, temperature: 0, topP: 0.9, seed: 42 }
    expect(chatRequest(parseChatFlags(['--prompt', 'Once upon a time']))).toEqual({ model: undefined, prompt: 'Once upon a time', ...sampling })
    expect(chatRequest(parseChatFlags(['--prompt', 'Hi', '--chat']))).toEqual({ model: undefined, prompt: 'Hi', messages: [{ role: 'user', content: 'Hi' }], ...sampling })
    expect(chatRequest(parseChatFlags(['--model', 'm', '--prompt', 'Hi', '--system', 'Be brief.', '--max-tokens', '8']))).toEqual({
      model: 'm', prompt: 'Hi', messages: [{ role: 'user', content: 'Hi' }], system: 'Be brief.', ...sampling, maxTokens: 8,
    })
    const help = tabmesh(['chat', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/--system <text>/)
  })

  it('with no models directory at all, says how to get a model', () => {
    const r = tabmesh(['generate'], { TABMESH_MODELS: join(tmp, 'missing') })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/--models-dir <folder> or set TABMESH_MODELS/)
  })
})
