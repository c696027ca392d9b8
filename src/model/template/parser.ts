import type { Expr, Node } from './ast.ts'
import type { Part, Tok } from './lexer.ts'

/**
 * Chat templates, step 2: the lexer's parts into a tree of nodes (if/for/set/macro blocks, output,
 * text), each tag's tokens into an expression by precedence climbing. Syntax errors go to `fail`.
 */

/** Deepest expression nesting ((((x)))), - - x, not not x) and block nesting ({% if %} in {% for %} ...) a template may have. */
export const MAX_EXPRESSION_DEPTH = 64
export const MAX_BLOCK_DEPTH = 64

class ExprParser {
  private i = 0
  private depth = 0
  constructor(private toks: Tok[], private fail: (msg: string, pos: number) => never) {}
  /** Runs a recursive step, refusing nesting past MAX_EXPRESSION_DEPTH before the call stack runs out. */
  private nested<T>(step: () => T): T {
    if (++this.depth > MAX_EXPRESSION_DEPTH) this.fail(`expression nested more than ${MAX_EXPRESSION_DEPTH} deep`, this.peek().pos)
    try {
      return step()
    } finally {
      this.depth--
    }
  }
  peek(): Tok { return this.toks[this.i] }
  next(): Tok { return this.toks[this.i++] }
  isOp(v: string): boolean { const t = this.peek(); return t.kind === 'op' && t.value === v }
  isName(v: string): boolean { const t = this.peek(); return t.kind === 'name' && t.value === v }
  expectOp(v: string): void { if (!this.isOp(v)) this.fail(`expected "${v}"`, this.peek().pos); this.i++ }
  expectName(): string { const t = this.next(); if (t.kind !== 'name') this.fail('expected a name', t.pos); return (t as { value: string }).value }
  atEnd(): boolean { return this.peek().kind === 'end' }
  expectEnd(): void { if (!this.atEnd()) this.fail(`unexpected ${JSON.stringify((this.peek() as { value?: unknown }).value)}`, this.peek().pos) }

  expr(): Expr { return this.nested(() => this.conditional()) }
  private conditional(): Expr {
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
  private not(): Expr { if (this.isName('not')) { this.i++; return { t: 'unary', op: 'not', value: this.nested(() => this.not()) } } return this.compare() }
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
  private unary(): Expr { if (this.isOp('-') || this.isOp('+')) { const op = (this.next() as { value: string }).value; return { t: 'unary', op, value: this.nested(() => this.unary()) } } return this.postfix(this.primary()) }
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
        if (!isSlice && parts[0] === undefined) this.fail('expected an index inside []', this.peek().pos)
        if (parts.length > 3) this.fail('a slice takes at most start:stop:step', this.peek().pos)
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

export function parse(parts: Part[], fail: (msg: string, pos: number) => never): Node[] {
  let i = 0
  const keyword = (p: Part) => (p.kind === 'block' && p.tokens[0].kind === 'name' ? p.tokens[0].value : undefined)
  let depth = 0
  function body(stops: string[]): { nodes: Node[]; stop?: string; part?: Part } {
    if (++depth > MAX_BLOCK_DEPTH) {
      const p = parts[i - 1]
      fail(`blocks nested more than ${MAX_BLOCK_DEPTH} deep`, p && p.kind !== 'text' ? p.pos : 0)
    }
    try {
      return blockBody(stops)
    } finally {
      depth--
    }
  }
  function blockBody(stops: string[]): { nodes: Node[]; stop?: string; part?: Part } {
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
