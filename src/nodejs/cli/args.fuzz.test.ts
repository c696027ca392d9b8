/**
 * Fuzzing the CLI's flag parsing: every command's parser (generate, convert, describe, start,
 * relay, contribute, chat and its request) on random argv arrays made of the flags they know,
 * flags they do not, "--flag=value" forms, "-" and "--", values that are numbers, not numbers,
 * huge, empty, or of any Unicode. Each is a 'bad-argument' TabmeshError with a short message that
 * names the flag, or parsed flags whose values are in range. Nothing is started: these are the
 * parsers alone.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fuzzParams } from '../../../testing/fuzz.ts'
import { outcome } from '../../../testing/fuzz-checks.ts'
import { numberFlag, parseFlags } from './args.ts'
import { parseConvertFlags } from './convert.ts'
import { parseDescribeFlags } from './describe.ts'
import { parseGenerateFlags } from './generate.ts'
import { parseRelayFlags } from './relay.ts'
import { parseStartFlags } from './start.ts'
import { chatRequest, parseChatFlags, parseContributeFlags, relayTarget } from './swarm.ts'

const FLAGS = ['model', 'tokenizer', 'models-dir', 'prompt', 'max-tokens', 'temperature', 'top-p', 'seed', 'backend', 'json', 'help', 'to', 'type', 'out', 'id',
  'base-url', 'host', 'port', 'relay-port', 'site-dir', 'contributors', 'max-reservations', 'relay', 'layers', 'chat', 'system']
const VALUES = ['0', '1', '-1', '64', '0.5', '1e3', '1e309', 'NaN', 'Infinity', '0x10', ' ', '', '9007199254740993', '65535', '65536', 'ref', 'wasm', 'webgpu', 'auto', 'cuda',
  'gguf', 'safetensors', 'q8_0', 'Q4_K', 'BF16', 'stories260K', '../x', 'a:b', '2:1', '0:5', '0:70000', 'http://h/', 'https://huggingface.co/r/resolve/main/', '/ip4/127.0.0.1/tcp/1/ws', 'toString', '__proto__']

const token = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...FLAGS).map((f) => `--${f}`) },
  { weight: 4, arbitrary: fc.constantFrom(...VALUES) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...FLAGS), fc.constantFrom(...VALUES)).map(([f, v]) => `--${f}=${v}`) },
  { weight: 1, arbitrary: fc.constantFrom('-', '--', '-h', '-x', '--no-json', '---', '--=', '--constructor', '--__proto__', '--toString', '-abc') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...FLAGS), fc.nat({ max: 200_000 })).map(([f, n]) => `--${f}=${'9'.repeat(n)}`) },
)
const argv = fc.array(token, { maxLength: 10 })

/** A parser's outcome, checked: a short bad-argument error, or flags. */
function parsed<T>(parse: () => T): T | undefined {
  const r = outcome(parse, ['bad-argument'], /--|option|argument|flag/i)
  expect(r.ok || r.error.message.length <= 400, r.ok ? '' : r.error.message.slice(0, 100)).toBe(true)
  return r.ok ? r.value : undefined
}

const port = (n: number) => Number.isInteger(n) && n >= 0 && n < 65536

describe('CLI flag parsing on random argv', () => {
  it('generate', () => {
    fc.assert(fc.property(argv, (args) => {
      const f = parsed(() => parseGenerateFlags(args))
      if (f && !f.help) {
        expect(Number.isInteger(f.maxTokens) && f.maxTokens >= 0).toBe(true)
        expect(Number.isFinite(f.temperature) && f.temperature >= 0).toBe(true)
        expect(Number.isFinite(f.topP)).toBe(true)
        expect(Number.isSafeInteger(f.seed) && f.seed >= 0).toBe(true)
        expect(['ref', 'wasm', 'webgpu', 'auto']).toContain(f.backend)
      }
    }), fuzzParams(100))
  })

  it('convert, describe, relay, start', () => {
    fc.assert(fc.property(argv, (args) => {
      const c = parsed(() => parseConvertFlags(args))
      if (c && !c.help) {
        expect(['gguf', 'safetensors']).toContain(c.to)
        expect(c.id).toMatch(/^[\w.-]+$/)
      }
      const d = parsed(() => parseDescribeFlags(args))
      if (d && !d.help && d.base !== undefined) expect(d.base).toMatch(/^https?:\/\/[^/]+\/(.*\/)?$/)
      const r = parsed(() => parseRelayFlags(args))
      if (r && !r.help) expect(port(r.port) && Number.isInteger(r.maxReservations) && r.maxReservations > 0).toBe(true)
      const s = parsed(() => parseStartFlags(args))
      if (s && !s.help) expect(port(s.port) && port(s.relayPort) && s.contributors >= 0 && s.contributors <= 16).toBe(true)
    }), fuzzParams(101))
  })

  it('contribute, chat and its request, and the relay target', () => {
    fc.assert(fc.property(argv, (args) => {
      const c = parsed(() => parseContributeFlags(args))
      if (c && !c.help && c.layers) expect(c.layers.start >= 0 && c.layers.start < c.layers.end && c.layers.end <= 0xffff).toBe(true)
      const flags = parsed(() => parseChatFlags(args))
      if (!flags) return
      const request = parsed(() => chatRequest(flags))
      if (request) {
        expect(Number.isInteger(request.maxTokens) && request.maxTokens >= 0 && Number.isSafeInteger(request.seed)).toBe(true)
        if (request.messages) expect(request.messages).toEqual([{ role: 'user', content: request.prompt }])
      }
      parsed(() => relayTarget(flags.relay))
    }), fuzzParams(102))
  })

  it('parseFlags and numberFlag alone, on any strings', () => {
    fc.assert(fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 12 }), { maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 30 }), (args, value) => {
      parsed(() => parseFlags(args, { a: { type: 'string' }, b: { type: 'boolean' } }))
      const n = parsed(() => numberFlag(value, 'n', 7, Number.isInteger))
      if (n !== undefined) expect(Number.isInteger(n)).toBe(true)
    }), fuzzParams(103))
  })
})

describe('CLI flags: counterexamples the fuzzers found', () => {
  it('a megabyte-long unknown flag or value is named in a short message, not echoed back whole', () => {
    const long = '9'.repeat(1 << 20)
    expect(() => parseGenerateFlags([`--bogus${long}`])).toThrow(expect.objectContaining({ code: 'bad-argument', message: expect.stringMatching(/^Unknown option '--bogus9+…$/) }))
    expect(() => parseGenerateFlags(['--max-tokens', `x${long}`])).toThrow(/^--max-tokens "x9{39}…" is not valid$/)
  })

  it('--layers past what the wire carries (u16) is refused', () => {
    expect(() => parseContributeFlags(['--layers', '0:70000'])).toThrow(/--layers 0:70000 should be a:b with a < b <= 65535/)
    expect(parseContributeFlags(['--layers', '2:5'])).toMatchObject({ layers: { start: 2, end: 5 } })
  })
})
