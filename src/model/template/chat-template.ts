import { TabmeshError } from '../../core/errors.ts'
import { createInterpreter } from './interpreter.ts'
import { lex } from './lexer.ts'
import { parse } from './parser.ts'
import { LoopSignal, MAX_LENGTH, Namespace, RenderLimit, str, strftime } from './values.ts'

/**
 * Chat templates: the Jinja subset that Hugging Face chat templates (tokenizer_config.json
 * chat_template, GGUF tokenizer.chat_template) use, rendered as transformers renders them
 * (trim_blocks and lstrip_blocks on, loop controls on, raise_exception and strftime_now given).
 *
 * Supported: {{ }}, {% %}, {# #} with "-" whitespace control; if/elif/else, for (with loop.*,
 * an inline `if` filter, else, break/continue), set (also namespace attributes and block set),
 * macro; literals, lists, dicts, attribute/index/slice access, calls, filters, tests (`is`), the
 * usual operators, and the string/dict methods templates call. Anything else is a clear error.
 *
 * The steps: lexer.ts (text to tags and tokens), parser.ts (tokens to the nodes of ast.ts),
 * interpreter.ts with builtins.ts and values.ts (nodes to text). This file puts them together.
 */

export interface ChatMessage {
  role: string
  content: string
  [key: string]: unknown
}

export interface RenderOptions {
  addGenerationPrompt?: boolean
  bosToken?: string
  eosToken?: string
  tools?: unknown[]
  /** More variables for the template (date_string, enable_thinking...). */
  variables?: Record<string, unknown>
}

export interface ChatTemplate {
  readonly source: string
  render(messages: ChatMessage[], options?: RenderOptions): string
}

/** A plain-text continuation "chat" for story models such as stories260K: the messages' text, nothing else. */
export const PLAIN_CONTINUATION_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"

export function compileChatTemplate(source: string, name = 'chat_template'): ChatTemplate {
  const lineOf = (pos: number) => source.slice(0, pos).split('\n').length
  const fail = (msg: string, pos: number): never => { throw new TabmeshError('tokenizer-format', `${name}: ${msg} (line ${lineOf(pos)})`) }
  let nodes: ReturnType<typeof parse>
  try {
    nodes = parse(lex(source, fail), fail)
  } catch (err) {
    // the lexer and parser report through fail(); anything else is a gap in them, still the template's fault
    if (err instanceof TabmeshError) throw err
    throw new TabmeshError('tokenizer-format', `${name}: cannot compile the chat template (internal error: ${String(err).slice(0, 200)})`)
  }
  const renderFail = (msg: string): never => { throw new TabmeshError('bad-argument', `${name}: the chat template failed to render: ${msg}`) }
  const { run, begin, charge } = createInterpreter(renderFail)
  const number = (v: unknown, what: string): number => (Number.isInteger(v) ? (v as number) : renderFail(`${what} should be a whole number, is ${str(v).slice(0, 20)}`))

  return {
    source,
    render(messages, options = {}) {
      const globals = new Map<string, unknown>([
        ['messages', messages],
        ['add_generation_prompt', options.addGenerationPrompt ?? false],
        ['bos_token', options.bosToken ?? ''],
        ['eos_token', options.eosToken ?? ''],
        ['tools', options.tools],
        ['raise_exception', (msg: unknown) => renderFail(`raise_exception(${JSON.stringify(str(msg))})`)],
        ['namespace', (kwargs: Record<string, unknown>) => new Namespace({ ...kwargs })],
        ['range', (a: unknown, b?: unknown, c?: unknown) => {
          // the last argument is the call's keyword arguments (an object)
          const given = [a, b, c].filter((x) => typeof x !== 'object' || x === null).filter((x) => x !== undefined)
          const [start, stop, step] = given.length >= 2
            ? [number(given[0], 'range() start'), number(given[1], 'range() stop'), given.length > 2 ? number(given[2], 'range() step') : 1]
            : [0, number(given[0], 'range() stop'), 1]
          if (step === 0) renderFail('range() step cannot be zero')
          const count = Math.max(0, Math.ceil((stop - start) / step))
          if (count > MAX_LENGTH) renderFail(`range() of ${count} numbers; at most ${MAX_LENGTH}`)
          charge(count)
          return Array.from({ length: count }, (_, k) => start + k * step)
        }],
        ['strftime_now', (fmt: unknown) => (typeof fmt === 'string' ? strftime(new Date(), fmt) : renderFail('strftime_now() takes a format string'))],
        ['dict', (kwargs: Record<string, unknown>) => ({ ...kwargs })],
      ])
      for (const [k, v] of Object.entries(options.variables ?? {})) globals.set(k, v)
      const out: string[] = []
      begin()
      try {
        run(nodes, [globals, new Map()], out)
      } catch (err) {
        if (err instanceof TabmeshError) throw err
        if (err instanceof LoopSignal) renderFail(`{% ${err.kind} %} outside a loop`)
        if (err instanceof RenderLimit) renderFail(err.message)
        // a gap in the interpreter's own checks: still this template's failure, never a crash of the caller
        renderFail(`internal error: ${String(err).slice(0, 200)}`)
      }
      return out.join('')
    },
  }
}
