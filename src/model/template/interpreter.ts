import type { Expr, Node } from './ast.ts'
import { createBuiltins } from './builtins.ts'
import { DICT_METHODS, isDict, LIST_METHODS, LoopSignal, Macro, MAX_LENGTH, Namespace, str, STRING_METHODS, truthy } from './values.ts'

/**
 * Chat templates, step 3: evaluating expressions and running nodes into output text. A scope is a
 * stack of frames (the globals, the template's own, one per loop or macro call).
 *
 * A template is a program from a model file, so a render is bounded: at most MAX_STEPS steps (a
 * node run, a loop turn, a macro call, an item a filter walks), macro calls at most MAX_CALL_DEPTH
 * deep, output and every string or list at most MAX_LENGTH long. Past a bound the render fails
 * with a clear error instead of hanging or running out of memory.
 */
export type Scope = Map<string, unknown>[]

export const MAX_STEPS = 1_000_000
export const MAX_CALL_DEPTH = 64

export function createInterpreter(renderFail: (msg: string) => never) {
  let steps = 0
  let calls = 0
  let written = 0
  const charge = (work: number) => {
    steps += work
    if (steps > MAX_STEPS) renderFail(`ran more than ${MAX_STEPS} steps (a loop that does not end?)`)
  }
  /** `v`, refused when it is a string or list longer than MAX_LENGTH. */
  const sized = <T>(v: T): T => {
    if ((typeof v === 'string' || Array.isArray(v)) && v.length > MAX_LENGTH) renderFail(`a ${typeof v === 'string' ? 'string' : 'list'} of ${v.length} ${typeof v === 'string' ? 'characters' : 'items'}; at most ${MAX_LENGTH}`)
    return v
  }
  const { callMethod, getAttr, applyFilter, runTest, contains } = createBuiltins(renderFail, charge)

  const lookup = (scope: Scope, n: string): unknown => {
    for (let k = scope.length - 1; k >= 0; k--) if (scope[k].has(n)) return scope[k].get(n)
    return undefined
  }

  const kind = (v: unknown) => (v === undefined ? 'an undefined value' : v === null ? 'None' : Array.isArray(v) ? 'a list' : typeof v)
  /** A number (or a boolean, as Python counts them) for arithmetic; anything else is the template's error. */
  const numeric = (v: unknown, op: string): number => (typeof v === 'number' || typeof v === 'boolean' ? Number(v) : renderFail(`cannot apply ${op} to ${kind(v)}`))
  /** Python's ordering: numbers with numbers, strings with strings. */
  const ordered = (l: unknown, r: unknown, op: string): number => {
    if (typeof l === 'string' && typeof r === 'string') return l < r ? -1 : l > r ? 1 : 0
    const a = numeric(l, op), b = numeric(r, op)
    return a < b ? -1 : a > b ? 1 : a === b ? 0 : NaN
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
        const index = (x: unknown): number | undefined => {
          if (x === undefined || x === null) return undefined
          if (!Number.isInteger(x)) return renderFail('slice indices must be whole numbers or none')
          return x as number
        }
        const step = e.step ? index(evaluate(e.step, scope)) ?? 1 : 1
        if (step === 0) renderFail('slice step cannot be zero')
        const norm = (x: number | undefined, dflt: number) => (x === undefined ? dflt : Math.max(step > 0 ? 0 : -1, Math.min(n, x < 0 ? n + x : x)))
        const start = norm(index(e.start && evaluate(e.start, scope)), step > 0 ? 0 : n - 1)
        const stop = norm(index(e.stop && evaluate(e.stop, scope)), step > 0 ? n : -1)
        charge(Math.abs(stop - start) / Math.abs(step))
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
        if (e.op === 'not') return !truthy(v)
        return e.op === '-' ? -numeric(v, e.op) : numeric(v, e.op)
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
          case '<': return ordered(l, r, e.op) < 0
          case '>': return ordered(l, r, e.op) > 0
          case '<=': return ordered(l, r, e.op) <= 0
          case '>=': return ordered(l, r, e.op) >= 0
          case 'in': return contains(r, l)
          case '~': return sized(str(l) + str(r))
          case '+':
            if (typeof l === 'string' && typeof r === 'string') return sized(l + r)
            if (Array.isArray(l) && Array.isArray(r)) {
              sized({ length: l.length + r.length } as unknown[])
              charge(l.length + r.length)
              return [...l, ...r]
            }
            if (typeof l === 'number' && typeof r === 'number') return l + r
            return renderFail(`cannot add ${l === undefined ? 'an undefined value' : typeof l} and ${r === undefined ? 'an undefined value' : typeof r}`)
          case '-': return numeric(l, e.op) - numeric(r, e.op)
          case '*':
            if (typeof l !== 'string') return numeric(l, e.op) * numeric(r, e.op)
            if (!Number.isInteger(r)) return renderFail(`cannot repeat a string ${str(r).slice(0, 20)} times`)
            if (l.length * (r as number) > MAX_LENGTH) return renderFail(`a string of ${l.length} characters repeated ${r} times; at most ${MAX_LENGTH} characters`)
            return l.repeat(Math.max(0, r as number))
          case '/': return numeric(l, e.op) / numeric(r, e.op)
          case '//': return Math.floor(numeric(l, e.op) / numeric(r, e.op))
          case '%': { const a = numeric(l, e.op), b = numeric(r, e.op); return ((a % b) + b) % b }
        }
      }
    }
    return renderFail('unsupported expression')
  }

  const write = (out: string[], text: string) => {
    written += text.length
    if (written > MAX_LENGTH) renderFail(`wrote more than ${MAX_LENGTH} characters`)
    out.push(text)
  }

  function run(body: Node[], scope: Scope, out: string[]): void {
    for (const n of body) {
      charge(1)
      switch (n.t) {
        case 'text': write(out, n.value); break
        case 'output': write(out, str(evaluate(n.expr, scope))); break
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
          // the items as the loop starts: the body appending to its own list does not make the loop endless
          let list = [...(items as unknown[])]
          charge(list.length)
          if (n.filter) list = list.filter((item) => { bind(item); return truthy(evaluate(n.filter!, [...scope, frame])) })
          if (list.length === 0) { run(n.else, scope, out); break }
          for (let k = 0; k < list.length; k++) {
            charge(1)
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
            if (calls >= MAX_CALL_DEPTH) renderFail(`macro ${n.name} called more than ${MAX_CALL_DEPTH} deep (does it call itself without end?)`)
            calls++
            try {
              charge(1)
              const frame = new Map<string, unknown>()
              n.params.forEach(([p, dflt], k) => frame.set(p, k < args.length ? args[k] : Object.hasOwn(kwargs, p) ? kwargs[p] : dflt ? evaluate(dflt, defScope) : undefined))
              const o: string[] = []
              run(n.body, [...defScope, frame], o)
              return o.join('')
            } finally {
              calls--
            }
          }))
          break
        }
        case 'break': throw new LoopSignal('break')
        case 'continue': throw new LoopSignal('continue')
      }
    }
  }

  /** Starts a render: its step, call and output counts from zero. */
  const begin = () => { steps = 0; calls = 0; written = 0 }

  return { evaluate, run, begin, charge }
}
