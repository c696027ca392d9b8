import { TabmeshError } from '../../core/errors.ts'

/**
 * Chat templates: the Jinja subset that Hugging Face chat templates (tokenizer_config.json
 * chat_template, GGUF tokenizer.chat_template) use, rendered as transformers renders them
 * (trim_blocks and lstrip_blocks on, loop controls on, raise_exception and strftime_now given).
 *
 * Supported: {{ }}, {% %}, {# #} with "-" whitespace control; if/elif/else, for (with loop.*,
 * an inline `if` filter, else, break/continue), set (also namespace attributes and block set),
 * macro; literals, lists, dicts, attribute/index/slice access, calls, filters, tests (`is`), the
 * usual operators, and the string/dict methods templates call. Anything else is a clear error.
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

// ---------------------------------------------------------------- lexing

type Tok =
  | { kind: 'name'; value: string; pos: number }
  | { kind: 'string'; value: string; pos: number }
  | { kind: 'number'; value: number; pos: number }
  | { kind: 'op'; value: string; pos: number }
  | { kind: 'end'; pos: number }

type Part =
  | { kind: 'text'; value: string }
  | { kind: 'output'; tokens: Tok[]; pos: number }
  | { kind: 'block'; tokens: Tok[]; pos: number }

const OPS = ['//', '**', '==', '!=', '<=', '>=', '+', '-', '*', '/', '%', '~', '<', '>', '=', '(', ')', '[', ']', '{', '}', ',', '.', ':', '|']

function tokenizeExpr(src: string, base: number, fail: (msg: string, pos: number) => never): Tok[] {
  const out: Tok[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i]
    if (/\s/.test(c)) { i++; continue }
    if (c === '"' || c === "'") {
      let j = i + 1
      let s = ''
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) {
          const e = src[j + 1]
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e
          j += 2
        } else s += src[j++]
      }
      if (j >= src.length) fail('unterminated string', base + i)
      out.push({ kind: 'string', value: s, pos: base + i })
      i = j + 1
      continue
    }
    const num = /^\d+(\.\d+)?/.exec(src.slice(i))
    if (num) { out.push({ kind: 'number', value: Number(num[0]), pos: base + i }); i += num[0].length; continue }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))
    if (name) { out.push({ kind: 'name', value: name[0], pos: base + i }); i += name[0].length; continue }
    const op = OPS.find((o) => src.startsWith(o, i))
    if (!op) fail(`unexpected character ${JSON.stringify(c)}`, base + i)
    out.push({ kind: 'op', value: op, pos: base + i })
    i += op.length
  }
  out.push({ kind: 'end', pos: base + src.length })
  return out
}

function lex(template: string, fail: (msg: string, pos: number) => never): Part[] {
  const parts: Part[] = []
  let i = 0
  let stripNext = false // the previous tag ended with "-"
  let trimNewline = false // the previous tag was a block or comment (trim_blocks)
  while (i <= template.length) {
    const open = template.slice(i).search(/\{[{%#]/)
    let text = open < 0 ? template.slice(i) : template.slice(i, i + open)
    if (stripNext) text = text.replace(/^\s+/, '')
    else if (trimNewline) text = text.replace(/^\r?\n/, '')
    if (open < 0) { if (text) parts.push({ kind: 'text', value: text }); break }
    const at = i + open
    const kind = template[at + 1]
    const close = kind === '{' ? '}}' : kind === '%' ? '%}' : '#}'
    const end = template.indexOf(close, at + 2)
    if (end < 0) fail(`unclosed ${template.slice(at, at + 2)}`, at)
    let inner = template.slice(at + 2, end)
    const stripBefore = inner.startsWith('-')
    const keepBefore = inner.startsWith('+')
    if (stripBefore || keepBefore) inner = inner.slice(1)
    stripNext = inner.endsWith('-')
    if (stripNext || inner.endsWith('+')) inner = inner.slice(0, -1)
    if (stripBefore) text = text.replace(/\s+$/, '')
    else if (kind !== '{' && !keepBefore) {
      // lstrip_blocks: a block tag alone on its line takes the line's indentation with it
      const lineStart = template.lastIndexOf('\n', at - 1) + 1
      if (lineStart >= i && /^[ \t]*$/.test(template.slice(lineStart, at))) text = text.replace(/[ \t]*$/, '')
    }
    if (text) parts.push({ kind: 'text', value: text })
    trimNewline = kind !== '{'
    const innerStart = at + 2 + (stripBefore || keepBefore ? 1 : 0)
    if (kind === '{') parts.push({ kind: 'output', tokens: tokenizeExpr(inner, innerStart, fail), pos: at })
    else if (kind === '%') parts.push({ kind: 'block', tokens: tokenizeExpr(inner, innerStart, fail), pos: at })
    i = end + 2
  }
  return parts
}

// ---------------------------------------------------------------- parsing

type Expr =
  | { t: 'lit'; v: unknown }
  | { t: 'name'; name: string }
  | { t: 'list'; items: Expr[] }
  | { t: 'dict'; entries: [Expr, Expr][] }
  | { t: 'attr'; obj: Expr; name: string }
  | { t: 'index'; obj: Expr; index: Expr }
  | { t: 'slice'; obj: Expr; start?: Expr; stop?: Expr; step?: Expr }
  | { t: 'call'; fn: Expr; args: Expr[]; kwargs: [string, Expr][] }
  | { t: 'filter'; value: Expr; name: string; args: Expr[]; kwargs: [string, Expr][] }
  | { t: 'test'; value: Expr; name: string; args: Expr[]; negate: boolean }
  | { t: 'unary'; op: string; value: Expr }
  | { t: 'binary'; op: string; left: Expr; right: Expr }
  | { t: 'cond'; test: Expr; then: Expr; else?: Expr }

type Node =
  | { t: 'text'; value: string }
  | { t: 'output'; expr: Expr }
  | { t: 'if'; branches: { test: Expr; body: Node[] }[]; else: Node[] }
  | { t: 'for'; targets: string[]; iter: Expr; filter?: Expr; body: Node[]; else: Node[] }
  | { t: 'set'; target: string; attr?: string; value?: Expr; body?: Node[] }
  | { t: 'macro'; name: string; params: [string, Expr | undefined][]; body: Node[] }
  | { t: 'break' } | { t: 'continue' }

class ExprParser {
  private i = 0
  constructor(private toks: Tok[], private fail: (msg: string, pos: number) => never) {}
  peek(): Tok { return this.toks[this.i] }
  next(): Tok { return this.toks[this.i++] }
  isOp(v: string): boolean { const t = this.peek(); return t.kind === 'op' && t.value === v }
  isName(v: string): boolean { const t = this.peek(); return t.kind === 'name' && t.value === v }
  expectOp(v: string): void { if (!this.isOp(v)) this.fail(`expected "${v}"`, this.peek().pos); this.i++ }
  expectName(): string { const t = this.next(); if (t.kind !== 'name') this.fail('expected a name', t.pos); return (t as { value: string }).value }
  atEnd(): boolean { return this.peek().kind === 'end' }
  expectEnd(): void { if (!this.atEnd()) this.fail(`unexpected ${JSON.stringify((this.peek() as { value?: unknown }).value)}`, this.peek().pos) }

  expr(): Expr {
    const value = this.or()
    if (this.isName('if')) {
      this.i++
      const test = this.or()
      let otherwise: Expr | undefined
      if (this.isName('else')) { this.i++; otherwise = this.expr() }
      return { t: 'cond', test, then: value, else: otherwise }
    }
    return value
  }
  /** An expression without the trailing `if` (the filter of a for loop). */
  orExpr(): Expr { return this.or() }
  private or(): Expr { let l = this.and(); while (this.isName('or')) { this.i++; l = { t: 'binary', op: 'or', left: l, right: this.and() } } return l }
  private and(): Expr { let l = this.not(); while (this.isName('and')) { this.i++; l = { t: 'binary', op: 'and', left: l, right: this.not() } } return l }
  private not(): Expr { if (this.isName('not')) { this.i++; return { t: 'unary', op: 'not', value: this.not() } } return this.compare() }
  private compare(): Expr {
    let l = this.concat()
    for (;;) {
      const t = this.peek()
      if (t.kind === 'op' && ['==', '!=', '<', '>', '<=', '>='].includes(t.value)) { this.i++; l = { t: 'binary', op: t.value, left: l, right: this.concat() } }
      else if (this.isName('in')) { this.i++; l = { t: 'binary', op: 'in', left: l, right: this.concat() } }
      else if (this.isName('not') && this.toks[this.i + 1]?.kind === 'name' && (this.toks[this.i + 1] as { value: string }).value === 'in') { this.i += 2; l = { t: 'unary', op: 'not', value: { t: 'binary', op: 'in', left: l, right: this.concat() } } }
      else if (this.isName('is')) {
        this.i++
        let negate = false
        if (this.isName('not')) { this.i++; negate = true }
        const name = this.expectName()
        const args: Expr[] = []
        if (this.isOp('(')) { this.i++; while (!this.isOp(')')) { args.push(this.expr()); if (this.isOp(',')) this.i++ } this.i++ }
        else if (!this.atEnd() && ['string', 'number'].includes(this.peek().kind)) args.push(this.primary())
        l = { t: 'test', value: l, name, args, negate }
      } else return l
    }
  }
  private concat(): Expr { let l = this.add(); while (this.isOp('~')) { this.i++; l = { t: 'binary', op: '~', left: l, right: this.add() } } return l }
  private add(): Expr { let l = this.mul(); while (this.isOp('+') || this.isOp('-')) { const op = (this.next() as { value: string }).value; l = { t: 'binary', op, left: l, right: this.mul() } } return l }
  private mul(): Expr { let l = this.unary(); while (['*', '/', '//', '%'].some((o) => this.isOp(o))) { const op = (this.next() as { value: string }).value; l = { t: 'binary', op, left: l, right: this.unary() } } return l }
  private unary(): Expr { if (this.isOp('-') || this.isOp('+')) { const op = (this.next() as { value: string }).value; return { t: 'unary', op, value: this.unary() } } return this.postfix(this.primary()) }
  private args(): { args: Expr[]; kwargs: [string, Expr][] } {
    const args: Expr[] = []
    const kwargs: [string, Expr][] = []
    this.expectOp('(')
    while (!this.isOp(')')) {
      const t = this.peek()
      if (t.kind === 'name' && this.toks[this.i + 1]?.kind === 'op' && (this.toks[this.i + 1] as { value: string }).value === '=') { this.i += 2; kwargs.push([t.value, this.expr()]) }
      else args.push(this.expr())
      if (!this.isOp(')')) this.expectOp(',')
    }
    this.i++
    return { args, kwargs }
  }
  private postfix(e: Expr): Expr {
    for (;;) {
      if (this.isOp('.')) { this.i++; e = { t: 'attr', obj: e, name: this.expectName() } }
      else if (this.isOp('[')) {
        this.i++
        const parts: (Expr | undefined)[] = [undefined]
        let isSlice = false
        while (!this.isOp(']')) {
          if (this.isOp(':')) { this.i++; isSlice = true; parts.push(undefined); continue }
          parts[parts.length - 1] = this.expr()
        }
        this.i++
        e = isSlice ? { t: 'slice', obj: e, start: parts[0], stop: parts[1], step: parts[2] } : { t: 'index', obj: e, index: parts[0]! }
      } else if (this.isOp('(')) { const { args, kwargs } = this.args(); e = { t: 'call', fn: e, args, kwargs } }
      else if (this.isOp('|')) {
        this.i++
        const name = this.expectName()
        const { args, kwargs } = this.isOp('(') ? this.args() : { args: [], kwargs: [] }
        e = { t: 'filter', value: e, name, args, kwargs }
      } else return e
    }
  }
  primary(): Expr {
    const t = this.next()
    switch (t.kind) {
      case 'string': {
        let s = t.value
        while (this.peek().kind === 'string') s += (this.next() as { value: string }).value // adjacent literals concatenate
        return { t: 'lit', v: s }
      }
      case 'number': return { t: 'lit', v: t.value }
      case 'name': {
        const lits: Record<string, unknown> = { true: true, True: true, false: false, False: false, none: null, None: null }
        return t.value in lits ? { t: 'lit', v: lits[t.value] } : { t: 'name', name: t.value }
      }
      case 'op':
        if (t.value === '(') {
          const e = this.expr()
          if (this.isOp(',')) { const items = [e]; while (this.isOp(',')) { this.i++; if (this.isOp(')')) break; items.push(this.expr()) } this.expectOp(')'); return { t: 'list', items } }
          this.expectOp(')')
          return e
        }
        if (t.value === '[') { const items: Expr[] = []; while (!this.isOp(']')) { items.push(this.expr()); if (!this.isOp(']')) this.expectOp(',') } this.i++; return { t: 'list', items } }
        if (t.value === '{') {
          const entries: [Expr, Expr][] = []
          while (!this.isOp('}')) { const k = this.expr(); this.expectOp(':'); entries.push([k, this.expr()]); if (!this.isOp('}')) this.expectOp(',') }
          this.i++
          return { t: 'dict', entries }
        }
    }
    return this.fail('expected a value', t.pos)
  }
}

function parse(parts: Part[], fail: (msg: string, pos: number) => never): Node[] {
  let i = 0
  const keyword = (p: Part) => (p.kind === 'block' && p.tokens[0].kind === 'name' ? p.tokens[0].value : undefined)
  function body(stops: string[]): { nodes: Node[]; stop?: string; part?: Part } {
    const nodes: Node[] = []
    while (i < parts.length) {
      const p = parts[i]
      if (p.kind === 'text') { nodes.push({ t: 'text', value: p.value }); i++; continue }
      const ep = new ExprParser(p.tokens, fail)
      if (p.kind === 'output') { const expr = ep.expr(); ep.expectEnd(); nodes.push({ t: 'output', expr }); i++; continue }
      const kw = keyword(p)
      if (kw && stops.includes(kw)) return { nodes, stop: kw, part: p }
      i++
      ep.next()
      switch (kw) {
        case 'if': {
          const branches = [{ test: ep.expr(), body: [] as Node[] }]
          ep.expectEnd()
          let otherwise: Node[] = []
          for (;;) {
            const r = body(['elif', 'else', 'endif'])
            if (!r.stop) fail('{% if %} without {% endif %}', p.pos)
            branches[branches.length - 1].body = r.nodes
            i++
            if (r.stop === 'elif') { const e = new ExprParser(r.part!.kind === 'block' ? r.part!.tokens : [], fail); e.next(); branches.push({ test: e.expr(), body: [] }); e.expectEnd(); continue }
            if (r.stop === 'else') { const r2 = body(['endif']); if (!r2.stop) fail('{% else %} without {% endif %}', p.pos); otherwise = r2.nodes; i++ }
            break
          }
          nodes.push({ t: 'if', branches, else: otherwise })
          break
        }
        case 'for': {
          const targets = [ep.expectName()]
          while (ep.isOp(',')) { ep.next(); targets.push(ep.expectName()) }
          if (!ep.isName('in')) fail('expected "in"', ep.peek().pos)
          ep.next()
          const iter = ep.orExpr()
          let filter: Expr | undefined
          if (ep.isName('if')) { ep.next(); filter = ep.orExpr() }
          ep.expectEnd()
          const r = body(['else', 'endfor'])
          if (!r.stop) fail('{% for %} without {% endfor %}', p.pos)
          i++
          let otherwise: Node[] = []
          if (r.stop === 'else') { const r2 = body(['endfor']); if (!r2.stop) fail('{% for %} without {% endfor %}', p.pos); otherwise = r2.nodes; i++ }
          nodes.push({ t: 'for', targets, iter, filter, body: r.nodes, else: otherwise })
          break
        }
        case 'set': {
          const target = ep.expectName()
          let attr: string | undefined
          if (ep.isOp('.')) { ep.next(); attr = ep.expectName() }
          if (ep.isOp('=')) { ep.next(); const value = ep.expr(); ep.expectEnd(); nodes.push({ t: 'set', target, attr, value }) }
          else {
            ep.expectEnd()
            const r = body(['endset'])
            if (!r.stop) fail('{% set %} without {% endset %}', p.pos)
            i++
            nodes.push({ t: 'set', target, attr, body: r.nodes })
          }
          break
        }
        case 'macro': {
          const name = ep.expectName()
          const params: [string, Expr | undefined][] = []
          ep.expectOp('(')
          while (!ep.isOp(')')) {
            const pname = ep.expectName()
            let dflt: Expr | undefined
            if (ep.isOp('=')) { ep.next(); dflt = ep.expr() }
            params.push([pname, dflt])
            if (!ep.isOp(')')) ep.expectOp(',')
          }
          ep.next()
          ep.expectEnd()
          const r = body(['endmacro'])
          if (!r.stop) fail('{% macro %} without {% endmacro %}', p.pos)
          i++
          nodes.push({ t: 'macro', name, params, body: r.nodes })
          break
        }
        case 'generation': { // transformers' assistant-mask marker: render its body
          const r = body(['endgeneration'])
          if (!r.stop) fail('{% generation %} without {% endgeneration %}', p.pos)
          i++
          nodes.push(...r.nodes)
          break
        }
        case 'break': ep.expectEnd(); nodes.push({ t: 'break' }); break
        case 'continue': ep.expectEnd(); nodes.push({ t: 'continue' }); break
        default: fail(`unknown or misplaced tag {% ${kw ?? ''} %}`, p.pos)
      }
    }
    return { nodes }
  }
  const r = body([])
  return r.nodes
}

// ---------------------------------------------------------------- rendering

const STRING_METHODS = ['strip', 'lstrip', 'rstrip', 'upper', 'lower', 'title', 'capitalize', 'startswith', 'endswith', 'split', 'replace', 'find', 'count', 'join', 'format']
const DICT_METHODS = ['items', 'keys', 'values', 'get']
const LIST_METHODS = ['append', 'index']

class Namespace { constructor(public values: Record<string, unknown>) {} }
class Macro { constructor(public call: (args: unknown[], kwargs: Record<string, unknown>) => string) {} }
class LoopSignal { constructor(public kind: 'break' | 'continue') {} }

const isDict = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Namespace) && !(v instanceof Macro)

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0
  if (isDict(v)) return Object.keys(v).length > 0
  return Boolean(v)
}

/** Python's str() of a value, as Jinja prints it. */
function str(v: unknown): string {
  if (v === undefined) return ''
  if (v === null) return 'None'
  if (v === true) return 'True'
  if (v === false) return 'False'
  if (typeof v === 'string') return v
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v)
  if (Array.isArray(v)) return `[${v.map(repr).join(', ')}]`
  if (isDict(v)) return `{${Object.entries(v).map(([k, x]) => `${repr(k)}: ${repr(x)}`).join(', ')}}`
  return String(v)
}
const repr = (v: unknown): string => (typeof v === 'string' ? `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'` : str(v))

/** Python json.dumps (ensure_ascii=False), as transformers' tojson filter calls it. */
function toJson(v: unknown, indent?: number, level = 0): string {
  if (v === undefined || v === null) return 'null'
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v)
  const pad = (n: number) => (indent === undefined ? '' : '\n' + ' '.repeat(indent * n))
  const sep = indent === undefined ? ', ' : ','
  if (Array.isArray(v)) return v.length === 0 ? '[]' : `[${pad(level + 1)}${v.map((x) => toJson(x, indent, level + 1)).join(sep + pad(level + 1))}${pad(level)}]`
  const entries = Object.entries(v as Record<string, unknown>)
  if (entries.length === 0) return '{}'
  return `{${pad(level + 1)}${entries.map(([k, x]) => `${JSON.stringify(k)}: ${toJson(x, indent, level + 1)}`).join(sep + pad(level + 1))}${pad(level)}}`
}

function pyStrip(s: string, chars: unknown, side: 'both' | 'left' | 'right'): string {
  const set = typeof chars === 'string' ? chars : ' \t\n\r\f\v'
  let a = 0, b = s.length
  if (side !== 'right') while (a < b && set.includes(s[a])) a++
  if (side !== 'left') while (b > a && set.includes(s[b - 1])) b--
  return s.slice(a, b)
}

export function compileChatTemplate(source: string, name = 'chat_template'): ChatTemplate {
  const lineOf = (pos: number) => source.slice(0, pos).split('\n').length
  const fail = (msg: string, pos: number): never => { throw new TabmeshError('tokenizer-format', `${name}: ${msg} (line ${lineOf(pos)})`) }
  const nodes = parse(lex(source, fail), fail)
  const renderFail = (msg: string): never => { throw new TabmeshError('bad-argument', `${name}: the chat template failed to render: ${msg}`) }

  function callMethod(obj: unknown, method: string, args: unknown[], kwargs: Record<string, unknown>): unknown {
    if (typeof obj === 'string') {
      switch (method) {
        case 'strip': return pyStrip(obj, args[0], 'both')
        case 'lstrip': return pyStrip(obj, args[0], 'left')
        case 'rstrip': return pyStrip(obj, args[0], 'right')
        case 'upper': return obj.toUpperCase()
        case 'lower': return obj.toLowerCase()
        case 'title': return obj.replace(/\w\S*/g, (w) => w[0].toUpperCase() + w.slice(1).toLowerCase())
        case 'capitalize': return obj.charAt(0).toUpperCase() + obj.slice(1).toLowerCase()
        case 'startswith': return Array.isArray(args[0]) ? args[0].some((p) => obj.startsWith(p as string)) : obj.startsWith(args[0] as string)
        case 'endswith': return Array.isArray(args[0]) ? args[0].some((p) => obj.endsWith(p as string)) : obj.endsWith(args[0] as string)
        case 'split': {
          if (args[0] === undefined || args[0] === null) return obj.split(/\s+/).filter((x) => x)
          const parts = obj.split(args[0] as string)
          const max = args[1] as number | undefined
          return max !== undefined && max >= 0 && parts.length > max + 1 ? [...parts.slice(0, max), parts.slice(max).join(args[0] as string)] : parts
        }
        case 'replace': return obj.split(args[0] as string).join(args[1] as string)
        case 'find': return obj.indexOf(args[0] as string)
        case 'count': return obj.split(args[0] as string).length - 1
        case 'join': return (args[0] as unknown[]).map(str).join(obj)
        case 'format': { let k = 0; return obj.replace(/\{\}/g, () => str(args[k++])) }
      }
    } else if (isDict(obj)) {
      switch (method) {
        case 'items': return Object.entries(obj)
        case 'keys': return Object.keys(obj)
        case 'values': return Object.values(obj)
        case 'get': return obj[args[0] as string] ?? args[1] ?? null
      }
    } else if (Array.isArray(obj)) {
      switch (method) {
        case 'append': obj.push(args[0]); return null
        case 'index': return obj.indexOf(args[0])
      }
    }
    void kwargs
    return renderFail(`no method ${method}() on ${obj === undefined ? 'an undefined value' : typeof obj}`)
  }

  function getAttr(obj: unknown, key: unknown): unknown {
    if (obj === undefined || obj === null) return undefined
    if (obj instanceof Namespace) return obj.values[key as string]
    if (Array.isArray(obj) || typeof obj === 'string') {
      if (typeof key === 'number') return obj[key < 0 ? obj.length + key : key]
      if (key === 'length') return undefined
      return undefined
    }
    if (isDict(obj)) return Object.prototype.hasOwnProperty.call(obj, key as string) ? obj[key as string] : undefined
    return undefined
  }

  function applyFilter(name: string, v: unknown, args: unknown[], kwargs: Record<string, unknown>): unknown {
    switch (name) {
      case 'trim': return pyStrip(str(v), args[0], 'both')
      case 'length': case 'count': return Array.isArray(v) || typeof v === 'string' ? v.length : isDict(v) ? Object.keys(v).length : 0
      case 'tojson': return toJson(v, (kwargs.indent ?? args[0]) as number | undefined)
      case 'upper': return str(v).toUpperCase()
      case 'lower': return str(v).toLowerCase()
      case 'capitalize': return callMethod(str(v), 'capitalize', [], {})
      case 'title': return callMethod(str(v), 'title', [], {})
      case 'default': case 'd': return v === undefined || (args[1] === true && !truthy(v)) ? args[0] : v
      case 'first': return Array.isArray(v) || typeof v === 'string' ? v[0] : undefined
      case 'last': return Array.isArray(v) || typeof v === 'string' ? v[v.length - 1] : undefined
      case 'join': return (Array.isArray(v) ? v : []).map((x) => str(kwargs.attribute ? getAttr(x, kwargs.attribute) : x)).join((args[0] as string) ?? '')
      case 'string': return str(v)
      case 'int': { const n = parseInt(str(v), 10); return Number.isNaN(n) ? (args[0] ?? 0) : n }
      case 'float': { const n = parseFloat(str(v)); return Number.isNaN(n) ? (args[0] ?? 0) : n }
      case 'list': return Array.isArray(v) ? [...v] : typeof v === 'string' ? Array.from(v) : isDict(v) ? Object.keys(v) : []
      case 'reverse': return Array.isArray(v) ? [...v].reverse() : Array.from(str(v)).reverse().join('')
      case 'replace': return str(v).split(args[0] as string).join(args[1] as string)
      case 'items': return isDict(v) ? Object.entries(v) : []
      case 'safe': case 'e': case 'escape': return v
      case 'abs': return Math.abs(v as number)
      case 'indent': {
        const width = (args[0] ?? kwargs.width ?? 4) as number
        const first = (args[1] ?? kwargs.first ?? false) as boolean
        const lines = str(v).split('\n')
        return lines.map((l, k) => ((k > 0 || first) && l ? ' '.repeat(width) + l : l)).join('\n')
      }
      case 'map': {
        const list = Array.isArray(v) ? v : []
        if (kwargs.attribute !== undefined) return list.map((x) => getAttr(x, kwargs.attribute) ?? kwargs.default)
        return list.map((x) => applyFilter(args[0] as string, x, args.slice(1), {}))
      }
      case 'select': case 'reject': {
        const keep = name === 'select'
        return (Array.isArray(v) ? v : []).filter((x) => (args.length ? runTest(args[0] as string, x, args.slice(1)) : truthy(x)) === keep)
      }
      case 'selectattr': case 'rejectattr': {
        const keep = name === 'selectattr'
        return (Array.isArray(v) ? v : []).filter((x) => {
          const a = getAttr(x, args[0])
          return (args.length > 1 ? runTest(args[1] as string, a, args.slice(2)) : truthy(a)) === keep
        })
      }
      case 'unique': return [...new Set(Array.isArray(v) ? v : [])]
      case 'sort': return [...(Array.isArray(v) ? v : [])].sort((a, b) => (str(a) < str(b) ? -1 : 1))
    }
    return renderFail(`unknown filter ${name}`)
  }

  function runTest(name: string, v: unknown, args: unknown[]): boolean {
    switch (name) {
      case 'defined': return v !== undefined
      case 'undefined': return v === undefined
      case 'none': return v === null
      case 'string': return typeof v === 'string'
      case 'number': return typeof v === 'number'
      case 'integer': return Number.isInteger(v)
      case 'float': return typeof v === 'number' && !Number.isInteger(v)
      case 'boolean': return typeof v === 'boolean'
      case 'true': return v === true
      case 'false': return v === false
      case 'mapping': return isDict(v)
      case 'iterable': return Array.isArray(v) || typeof v === 'string' || isDict(v)
      case 'sequence': return Array.isArray(v) || typeof v === 'string'
      case 'callable': return v instanceof Macro || typeof v === 'function'
      case 'even': return (v as number) % 2 === 0
      case 'odd': return (v as number) % 2 === 1
      case 'divisibleby': return (v as number) % (args[0] as number) === 0
      case 'equalto': case 'eq': case 'sameas': return v === args[0]
      case 'ne': return v !== args[0]
      case 'in': return contains(args[0], v)
      case 'lower': return typeof v === 'string' && v === v.toLowerCase()
      case 'upper': return typeof v === 'string' && v === v.toUpperCase()
    }
    return renderFail(`unknown test ${name}`)
  }

  function contains(container: unknown, item: unknown): boolean {
    if (typeof container === 'string') return container.includes(str(item))
    if (Array.isArray(container)) return container.some((x) => x === item)
    if (isDict(container)) return Object.prototype.hasOwnProperty.call(container, item as string)
    if (container instanceof Namespace) return item as string in container.values
    return false
  }

  type Scope = Map<string, unknown>[]
  const lookup = (scope: Scope, n: string): unknown => {
    for (let k = scope.length - 1; k >= 0; k--) if (scope[k].has(n)) return scope[k].get(n)
    return undefined
  }

  function evaluate(e: Expr, scope: Scope): unknown {
    switch (e.t) {
      case 'lit': return e.v
      case 'name': return lookup(scope, e.name)
      case 'list': return e.items.map((x) => evaluate(x, scope))
      case 'dict': return Object.fromEntries(e.entries.map(([k, v]) => [str(evaluate(k, scope)), evaluate(v, scope)]))
      case 'attr': {
        const obj = evaluate(e.obj, scope)
        const v = getAttr(obj, e.name)
        const methods = typeof obj === 'string' ? STRING_METHODS : isDict(obj) ? DICT_METHODS : Array.isArray(obj) ? LIST_METHODS : undefined
        if (v === undefined && methods?.includes(e.name)) return { __method: e.name, __self: obj }
        return v
      }
      case 'index': {
        const obj = evaluate(e.obj, scope)
        return getAttr(obj, evaluate(e.index, scope))
      }
      case 'slice': {
        const obj = evaluate(e.obj, scope)
        if (!Array.isArray(obj) && typeof obj !== 'string') return renderFail('slicing something that is not a list or string')
        const n = obj.length
        const step = e.step ? (evaluate(e.step, scope) as number) : 1
        const norm = (x: unknown, dflt: number) => (x === undefined || x === null ? dflt : Math.max(step > 0 ? 0 : -1, Math.min(n, (x as number) < 0 ? n + (x as number) : (x as number))))
        const start = norm(e.start && evaluate(e.start, scope), step > 0 ? 0 : n - 1)
        const stop = norm(e.stop && evaluate(e.stop, scope), step > 0 ? n : -1)
        const out: unknown[] = []
        for (let k = start; step > 0 ? k < stop : k > stop; k += step) out.push(obj[k])
        return typeof obj === 'string' ? out.join('') : out
      }
      case 'call': {
        const args = e.args.map((a) => evaluate(a, scope))
        const kwargs = Object.fromEntries(e.kwargs.map(([k, v]) => [k, evaluate(v, scope)]))
        const fn = evaluate(e.fn, scope)
        if (fn && typeof fn === 'object' && '__method' in fn) return callMethod((fn as unknown as { __self: unknown }).__self, (fn as unknown as { __method: string }).__method, args, kwargs)
        if (fn instanceof Macro) return fn.call(args, kwargs)
        if (typeof fn === 'function') return fn(...args, kwargs)
        return renderFail(`${e.fn.t === 'name' ? e.fn.name : 'value'} is not callable`)
      }
      case 'filter': {
        const v = evaluate(e.value, scope)
        return applyFilter(e.name, v, e.args.map((a) => evaluate(a, scope)), Object.fromEntries(e.kwargs.map(([k, x]) => [k, evaluate(x, scope)])))
      }
      case 'test': {
        const r = runTest(e.name, evaluate(e.value, scope), e.args.map((a) => evaluate(a, scope)))
        return e.negate ? !r : r
      }
      case 'unary': {
        const v = evaluate(e.value, scope)
        return e.op === 'not' ? !truthy(v) : e.op === '-' ? -(v as number) : +(v as number)
      }
      case 'cond': return truthy(evaluate(e.test, scope)) ? evaluate(e.then, scope) : e.else ? evaluate(e.else, scope) : undefined
      case 'binary': {
        if (e.op === 'and') { const l = evaluate(e.left, scope); return truthy(l) ? evaluate(e.right, scope) : l }
        if (e.op === 'or') { const l = evaluate(e.left, scope); return truthy(l) ? l : evaluate(e.right, scope) }
        const l = evaluate(e.left, scope)
        const r = evaluate(e.right, scope)
        switch (e.op) {
          case '==': return l === r || (l == null && r == null)
          case '!=': return !(l === r || (l == null && r == null))
          case '<': return (l as number) < (r as number)
          case '>': return (l as number) > (r as number)
          case '<=': return (l as number) <= (r as number)
          case '>=': return (l as number) >= (r as number)
          case 'in': return contains(r, l)
          case '~': return str(l) + str(r)
          case '+':
            if (typeof l === 'string' && typeof r === 'string') return l + r
            if (Array.isArray(l) && Array.isArray(r)) return [...l, ...r]
            if (typeof l === 'number' && typeof r === 'number') return l + r
            return renderFail(`cannot add ${l === undefined ? 'an undefined value' : typeof l} and ${r === undefined ? 'an undefined value' : typeof r}`)
          case '-': return (l as number) - (r as number)
          case '*': return typeof l === 'string' ? l.repeat(r as number) : (l as number) * (r as number)
          case '/': return (l as number) / (r as number)
          case '//': return Math.floor((l as number) / (r as number))
          case '%': return (((l as number) % (r as number)) + (r as number)) % (r as number)
        }
      }
    }
    return renderFail('unsupported expression')
  }

  function run(body: Node[], scope: Scope, out: string[]): void {
    for (const n of body) {
      switch (n.t) {
        case 'text': out.push(n.value); break
        case 'output': out.push(str(evaluate(n.expr, scope))); break
        case 'if': {
          const branch = n.branches.find((b) => truthy(evaluate(b.test, scope)))
          run(branch ? branch.body : n.else, scope, out)
          break
        }
        case 'for': {
          let items = evaluate(n.iter, scope)
          if (isDict(items)) items = Object.keys(items)
          if (typeof items === 'string') items = Array.from(items)
          if (items === undefined || items === null) items = []
          if (!Array.isArray(items)) renderFail('for loop over something that is not a list')
          const frame = new Map<string, unknown>()
          const bind = (item: unknown) => {
            if (n.targets.length === 1) frame.set(n.targets[0], item)
            else n.targets.forEach((t, k) => frame.set(t, Array.isArray(item) ? item[k] : undefined))
          }
          let list = items as unknown[]
          if (n.filter) list = list.filter((item) => { bind(item); return truthy(evaluate(n.filter!, [...scope, frame])) })
          if (list.length === 0) { run(n.else, scope, out); break }
          for (let k = 0; k < list.length; k++) {
            bind(list[k])
            frame.set('loop', {
              index: k + 1, index0: k, revindex: list.length - k, revindex0: list.length - k - 1,
              first: k === 0, last: k === list.length - 1, length: list.length,
              previtem: list[k - 1], nextitem: list[k + 1],
            })
            try {
              run(n.body, [...scope, frame], out)
            } catch (signal) {
              if (!(signal instanceof LoopSignal)) throw signal
              if (signal.kind === 'break') break
            }
          }
          break
        }
        case 'set': {
          const value = n.body ? (() => { const o: string[] = []; run(n.body!, scope, o); return o.join('') })() : evaluate(n.value!, scope)
          if (n.attr) {
            const ns = lookup(scope, n.target)
            if (!(ns instanceof Namespace)) renderFail(`cannot set ${n.target}.${n.attr}: ${n.target} is not a namespace`)
            ;(ns as Namespace).values[n.attr] = value
          } else scope[scope.length - 1].set(n.target, value)
          break
        }
        case 'macro': {
          const defScope = scope
          scope[scope.length - 1].set(n.name, new Macro((args, kwargs) => {
            const frame = new Map<string, unknown>()
            n.params.forEach(([p, dflt], k) => frame.set(p, k < args.length ? args[k] : p in kwargs ? kwargs[p] : dflt ? evaluate(dflt, defScope) : undefined))
            const o: string[] = []
            run(n.body, [...defScope, frame], o)
            return o.join('')
          }))
          break
        }
        case 'break': throw new LoopSignal('break')
        case 'continue': throw new LoopSignal('continue')
      }
    }
  }

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

function strftime(d: Date, fmt: string): string {
  const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December']
  const days = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
  const two = (n: number) => String(n).padStart(2, '0')
  return fmt.replace(/%([dmYbBaAHMSy%])/g, (_, c: string) => ({
    d: two(d.getDate()), m: two(d.getMonth() + 1), Y: String(d.getFullYear()), y: two(d.getFullYear() % 100),
    b: months[d.getMonth()].slice(0, 3), B: months[d.getMonth()], a: days[d.getDay()].slice(0, 3), A: days[d.getDay()],
    H: two(d.getHours()), M: two(d.getMinutes()), S: two(d.getSeconds()), '%': '%',
  })[c]!)
}
