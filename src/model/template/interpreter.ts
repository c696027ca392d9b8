import type { Expr, Node } from './ast.ts'
import { createBuiltins } from './builtins.ts'
import { DICT_METHODS, isDict, LIST_METHODS, LoopSignal, Macro, Namespace, str, STRING_METHODS, truthy } from './values.ts'

/**
 * Chat templates, step 3: evaluating expressions and running nodes into output text. A scope is a
 * stack of frames (the globals, the template's own, one per loop or macro call).
 */
export type Scope = Map<string, unknown>[]

export function createInterpreter(renderFail: (msg: string) => never) {
  const { callMethod, getAttr, applyFilter, runTest, contains } = createBuiltins(renderFail)

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

  return { evaluate, run }
}
