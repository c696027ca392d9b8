/**
 * Fuzzing the chat templates: the real templates the tests use (SmolLM2, Llama-3, TinyLlama,
 * Llama-2, Qwen2.5, the plain continuation) rendered with random conversations (any role, contents
 * full of braces, quotes, Jinja-like text and any Unicode), and random or damaged template sources,
 * compiled and rendered. Each is a string or a typed error ('tokenizer-format' to compile,
 * 'bad-argument' to render) naming the template, in bounded time and output; none is an
 * "internal error" (the interpreter's last-line catch of an exception it did not foresee).
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LLAMA2, LLAMA3, QWEN25, SMOLLM2, TINYLLAMA } from '../../../testing/chat-templates.ts'
import { fuzzParams } from '../../../testing/fuzz.ts'
import { outcome } from '../../../testing/fuzz-checks.ts'
import { compileChatTemplate, PLAIN_CONTINUATION_TEMPLATE, type ChatMessage, type ChatTemplate, type RenderOptions } from './chat-template.ts'
import { buildPrompt } from './prompt.ts'
import { MAX_LENGTH } from './values.ts'

const TEMPLATES = { SMOLLM2, LLAMA3, TINYLLAMA, LLAMA2, QWEN25, PLAIN: PLAIN_CONTINUATION_TEMPLATE }
type Name = keyof typeof TEMPLATES
const compiled = Object.fromEntries(Object.entries(TEMPLATES).map(([k, v]) => [k, compileChatTemplate(v, `${k} chat template`)])) as Record<Name, ChatTemplate>

const jinjaLike = fc.constantFrom('{{ messages }}', '{% for m in messages %}', '{% endfor %}', '{{', '}}', '{%', '%}', '{#', "'", '"', '\\', '<|im_end|>', '</s>', '[INST]', '{{ raise_exception("x") }}', '{% set x = 1 %}')
const content = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.oneof(fc.string({ unit: 'grapheme', maxLength: 2 }), jinjaLike), maxLength: 8 }),
  fc.array(jinjaLike, { maxLength: 4 }).map((a) => a.join('')),
)
const role = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('system', 'user', 'assistant', 'tool') }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) })
const message: fc.Arbitrary<ChatMessage> = fc.record({ role, content })
const toolCall = fc.record({ type: fc.constant('function'), function: fc.record({ name: fc.string({ maxLength: 10 }), arguments: fc.jsonValue({ maxDepth: 2 }) }) })
const messageWithTools: fc.Arbitrary<ChatMessage> = fc.record({ role, content, tool_calls: fc.array(toolCall, { maxLength: 2 }) }, { requiredKeys: ['role', 'content'] })
const options: fc.Arbitrary<RenderOptions> = fc.record({
  addGenerationPrompt: fc.boolean(),
  bosToken: fc.constantFrom('', '<s>', '<|begin_of_text|>', '{{'),
  eosToken: fc.constantFrom('', '</s>', '<|eot_id|>'),
  tools: fc.option(fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 3 }), { nil: undefined }),
}, { requiredKeys: [] })

/** Compiles and renders with the checks every outcome must pass; returns the text, if any. */
function attempt(source: string, messages: ChatMessage[], opts: RenderOptions = {}): string | undefined {
  const compiledTemplate = outcome(() => compileChatTemplate(source, 'fuzz chat template'), ['tokenizer-format'], /^fuzz chat template: /, 'compile')
  if (!compiledTemplate.ok) return undefined
  const rendered = outcome(() => compiledTemplate.value.render(messages, opts), ['bad-argument'], /^fuzz chat template: the chat template failed to render: /, 'render')
  if (!rendered.ok) {
    expect(rendered.error.message, 'an exception the interpreter did not foresee').not.toMatch(/internal error/)
    return undefined
  }
  expect(typeof rendered.value).toBe('string')
  expect(rendered.value.length).toBeLessThanOrEqual(MAX_LENGTH)
  return rendered.value
}

/** What Llama-2's template checks: after an opening system message, user turns exactly at the even places. */
const alternates = (messages: ChatMessage[]) => {
  const turns = messages[0]?.role === 'system' ? messages.slice(1) : messages
  return turns.every((m, k) => (m.role === 'user') === (k % 2 === 0))
}

describe('the real chat templates with random conversations', () => {
  it('render to a string (or, for Llama-2, refuse turns that do not alternate), carrying the contents', () => {
    fc.assert(fc.property(fc.constantFrom(...(Object.keys(TEMPLATES) as Name[])), fc.array(fc.oneof(message, messageWithTools), { maxLength: 6 }), options, (name, messages, opts) => {
      const r = outcome(() => compiled[name].render(messages, opts), ['bad-argument'], new RegExp(`^${name} chat template: the chat template failed to render: `))
      if (!r.ok) {
        expect(name === 'LLAMA2' && !alternates(messages), r.error.message).toBe(true)
        return
      }
      expect(compiled[name].render(messages, opts)).toBe(r.value) // the same conversation, the same prompt
      if (name === 'PLAIN') expect(r.value).toBe(messages.map((m) => m.content).join(''))
      if (name === 'SMOLLM2' || name === 'QWEN25') for (const m of messages) if (m.role === 'user') expect(r.value).toContain(m.content)
      if (name === 'LLAMA2') expect(alternates(messages)).toBe(true)
    }), fuzzParams(90))
  })

  it('buildPrompt with a system message: the same, through the one prompt builder', () => {
    fc.assert(fc.property(fc.constantFrom(...(Object.keys(TEMPLATES) as Name[])), fc.array(message, { minLength: 1, maxLength: 4 }), content, (name, messages, system) => {
      const before = structuredClone(messages)
      outcome(() => buildPrompt(compiled[name], messages, { system }), ['bad-argument'])
      expect(messages).toEqual(before) // the caller's messages stay as they were
    }), fuzzParams(91))
  })
})

describe('random and damaged template sources', () => {
  const piece = fc.constantFrom(
    '{{', '}}', '{%', '%}', '{#', '#}', '{{-', '-}}', '{%-', '-%}', ' ', '\n', 'x', 'ns', 'messages', 'message', 'loop', 'm', 'range(', ')', '(', '[', ']', '{', '}', ':', ',', '.', '|', '=',
    "'a'", '"b"', "'", '1', '0', '-1', '1000', '1e3', '*', '+', '-', '~', '/', '//', '%', '==', '!=', '<', 'not', 'and', 'or', 'is', 'in', 'if', 'else', 'elif', 'endif', 'for', 'endfor',
    'set', 'endset', 'macro', 'endmacro', 'break', 'continue', 'namespace(', 'ns.x', 'append(', 'tojson', 'join', 'indent', 'length', 'items()', 'defined', 'true', 'none',
    'raise_exception(', 'strftime_now(', 'content', 'role', '[::-1]', '[::0]', '[1:]', 'f(', 'loop.index', 'upper', 'replace(', 'format(', 'sort', 'map(', 'select', 'dict(',
  )
  const source = fc.array(piece, { maxLength: 40 }).map((p) => p.join(''))
  const conversation = fc.array(message, { maxLength: 3 })

  it('random sources of Jinja pieces: a typed error or a string', () => {
    fc.assert(fc.property(source, conversation, (src, messages) => { attempt(src, messages) }), fuzzParams(92))
  })

  it('random sources of any characters', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 80 }), conversation, (src, messages) => { attempt(src, messages) }), fuzzParams(93))
  })

  it('the real templates with pieces deleted, repeated, or inserted', () => {
    const edit = fc.record({ at: fc.nat(), length: fc.nat({ max: 40 }), kind: fc.constantFrom('delete', 'repeat', 'insert'), insert: source })
    fc.assert(fc.property(fc.constantFrom(...(Object.keys(TEMPLATES) as Name[])), fc.array(edit, { minLength: 1, maxLength: 3 }), conversation, options, (name, edits, messages, opts) => {
      let src: string = TEMPLATES[name]
      for (const e of edits) {
        const at = e.at % (src.length + 1)
        if (e.kind === 'delete') src = src.slice(0, at) + src.slice(at + e.length)
        else if (e.kind === 'repeat') src = src.slice(0, at + e.length) + src.slice(at, at + e.length) + src.slice(at + e.length)
        else src = src.slice(0, at) + e.insert + src.slice(at)
      }
      attempt(src, messages, opts)
    }), fuzzParams(94))
  })

  it('loops that run long, strings and lists that double, recursion, self-holding lists: bounded, refused by name', () => {
    const program = fc.constantFrom(
      '{% for i in range(N) %}{% for j in range(N) %}{% for k in range(N) %}x{% endfor %}{% endfor %}{% endfor %}',
      "{% set ns = namespace(s='ab') %}{% for i in range(N) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
      '{% set ns = namespace(l=[1]) %}{% for i in range(N) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}',
      '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(N) }}',
      '{% set l = [] %}{{ l.append(l) }}{{ l }}{{ l|tojson }}',
      '{% set l = [1] %}{% for x in l %}{{ l.append(x) }}{% endfor %}{{ l|length }}',
      "{{ 'x' * N }}{{ 'x'|indent(N) }}{{ [1]|tojson(indent=N) }}{{ range(N)|join(',') }}",
      "{{ 'abc'[::N] }}{{ range(0, N, 0) }}",
      '{{ range(N)|sort|unique|map("string")|list|length }}',
    )
    fc.assert(fc.property(program, fc.constantFrom(0, 1, 2, 10, 64, 100, 1000, 30000, 2 ** 31, -5), (src, n) => {
      attempt(src.replaceAll('N', String(n)), [{ role: 'user', content: 'hi' }])
    }), { ...fuzzParams(95), numRuns: Math.max(1, Math.ceil(fuzzParams().numRuns / 10)) })
  })
})

describe('chat templates: counterexamples the fuzzers found', () => {
  const refused = (src: string, message: RegExp) => {
    expect(() => compileChatTemplate(src, 't').render([{ role: 'user', content: 'hi' }])).toThrow(message)
  }

  it('a loop that never ends, or runs a billion times, is stopped by the step budget', () => {
    refused('{% for i in range(1, 0, 0) %}x{% endfor %}', /^t: the chat template failed to render: range\(\) step cannot be zero/)
    refused('{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}', /ran more than 1000000 steps/)
    refused("{{ 'abc'[::0] }}", /slice step cannot be zero/)
    refused('{{ range(1000000000000) }}', /range\(\) of 1000000000000 numbers; at most 4194304/)
  })

  it('a loop over a list it appends to runs over the items it started with', () => {
    expect(compileChatTemplate('{% set l = [1, 2] %}{% for x in l %}{{ l.append(x) }}{% endfor %}{{ l|length }}').render([])).toBe('NoneNone4')
  })

  it('strings and lists that double past the bound are refused before they are made', () => {
    refused("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}", /a string of 8388608 characters; at most 4194304/)
    refused("{{ ('x' * 4000000) * 2 }}", /repeated 2 times; at most 4194304 characters/)
    refused("{{ ('x' * 4000) | replace('x', 'y' * 4000) }}", /replace\(\) makes 16000000 characters/)
    refused("{{ 'x' * -1 }}{{ 'a\nb' | indent(-3) }}", /indent\(-3\): the width should be a whole number/)
  })

  it('recursion and self-holding values are refused by depth, not by a stack overflow', () => {
    refused('{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}', /macro f called more than 64 deep/)
    refused('{% set l = [] %}{{ l.append(l) }}{{ l }}', /a value nested more than 64 deep \(a list that holds itself\?\)/)
    expect(() => compileChatTemplate('{{ ' + '('.repeat(20_000) + '1' + ')'.repeat(20_000) + ' }}', 't')).toThrow(/^t: expression nested more than 64 deep/)
    expect(() => compileChatTemplate('{% if 1 %}'.repeat(5000) + 'x' + '{% endif %}'.repeat(5000), 't')).toThrow(/^t: blocks nested more than 64 deep/)
  })

  it('an empty subscript is a syntax error, not an index of nothing (seed 4242: Llama-2\'s messages[0][\'role\'] with the key deleted)', () => {
    expect(() => compileChatTemplate("{% if messages[0][] == 'system' %}{% endif %}", 't')).toThrow(/^t: expected an index inside \[\] \(line 1\)/)
    expect(() => compileChatTemplate("{{ 'abc'[1:2:3:4] }}", 't')).toThrow(/^t: a slice takes at most start:stop:step/)
  })

  it('wrong argument types are the template\'s error, not a TypeError', () => {
    refused("{{ 'a'.join(5) }}", /join\(\) takes a list/)
    refused('{{ strftime_now(5) }}', /strftime_now\(\) takes a format string/)
    // a message object without a prototype (what structured clone or JSON-parsed tools can hold) in arithmetic
    const bare = Object.assign(Object.create(null), { role: 'system', content: '' })
    expect(() => compileChatTemplate('{% for m in messages % 2 %}{% endfor %}', 't').render([bare])).toThrow(/^t: the chat template failed to render: cannot apply % to a list/)
  })

  it('Object.prototype members are not attributes of namespaces or dicts', () => {
    expect(compileChatTemplate("{{ namespace().constructor }}|{{ {}.get('toString') }}|{{ 'constructor' in namespace() }}").render([])).toBe('|None|False')
  })

  it('whitespace control over long runs of spaces is linear (the /\\s+$/ strip backtracked quadratically)', () => {
    const spaces = ' '.repeat(200_000)
    const started = performance.now()
    expect(compileChatTemplate(`{{ 1 }}${spaces}x{{- 2 }}`).render([]) === `1${spaces}x2`).toBe(true)
    expect(compileChatTemplate(`{{ 1 }}x${spaces}{{- 2 }}`).render([]) === '1x2').toBe(true)
    expect(compileChatTemplate(`\n${spaces}{% if 1 %}{% endif %}x`).render([]) === '\nx').toBe(true) // lstrip_blocks: the tag alone on its line takes the indentation
    expect(performance.now() - started).toBeLessThan(2000)
  })
})
