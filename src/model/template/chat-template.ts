import { TabmeshError } from '../../core/errors.ts'
import { createInterpreter } from './interpreter.ts'
import { lex } from './lexer.ts'
import { parse } from './parser.ts'
import { LoopSignal, Namespace, str, strftime } from './values.ts'

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
  const nodes = parse(lex(source, fail), fail)
  const renderFail = (msg: string): never => { throw new TabmeshError('bad-argument', `${name}: the chat template failed to render: ${msg}`) }
  const { run } = createInterpreter(renderFail)

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
        ['range', (a: number, b?: number | Record<string, unknown>, c?: number | Record<string, unknown>) => {
          const [start, stop, step] = typeof b === 'number' ? [a, b, typeof c === 'number' ? c : 1] : [0, a, 1]
          const out: number[] = []
          for (let k = start; step > 0 ? k < stop : k > stop; k += step) out.push(k)
          return out
        }],
        ['strftime_now', (fmt: string) => strftime(new Date(), fmt)],
        ['dict', (kwargs: Record<string, unknown>) => ({ ...kwargs })],
      ])
      for (const [k, v] of Object.entries(options.variables ?? {})) globals.set(k, v)
      const out: string[] = []
      try {
        run(nodes, [globals, new Map()], out)
      } catch (err) {
        if (err instanceof LoopSignal) renderFail(`{% ${err.kind} %} outside a loop`)
        throw err
      }
      return out.join('')
    },
  }
}
