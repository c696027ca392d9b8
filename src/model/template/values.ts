/**
 * Chat templates, the values a template computes with, as Jinja (so Python) sees them: truthiness,
 * str() and repr(), json.dumps for tojson, str.strip, strftime, namespaces and macros.
 */

export const STRING_METHODS = ['strip', 'lstrip', 'rstrip', 'upper', 'lower', 'title', 'capitalize', 'startswith', 'endswith', 'split', 'replace', 'find', 'count', 'join', 'format']
export const DICT_METHODS = ['items', 'keys', 'values', 'get']
export const LIST_METHODS = ['append', 'index']

export class Namespace { constructor(public values: Record<string, unknown>) {} }
export class Macro { constructor(public call: (args: unknown[], kwargs: Record<string, unknown>) => string) {} }
export class LoopSignal { constructor(public kind: 'break' | 'continue') {} }

/**
 * What one render may make: the longest string or list (a prompt past this is past any context
 * window), and the deepest value it prints (a list that holds itself is infinitely deep). Past
 * them a template fails with a RenderLimit, which render() reports as the template's error.
 */
export const MAX_LENGTH = 1 << 22
export const MAX_VALUE_DEPTH = 64
export class RenderLimit extends Error {}

interface Budget { left: number }
const newBudget = (): Budget => ({ left: MAX_LENGTH })
function spend(budget: Budget, n: number): void {
  budget.left -= n
  if (budget.left < 0) throw new RenderLimit(`a value prints to more than ${MAX_LENGTH} characters`)
}
function deeper(depth: number): number {
  if (depth >= MAX_VALUE_DEPTH) throw new RenderLimit(`a value nested more than ${MAX_VALUE_DEPTH} deep (a list that holds itself?)`)
  return depth + 1
}

export const isDict = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Namespace) && !(v instanceof Macro)

export function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0
  if (isDict(v)) return Object.keys(v).length > 0
  return Boolean(v)
}

/** Python's str() of a value, as Jinja prints it (a RenderLimit past MAX_VALUE_DEPTH or MAX_LENGTH). */
export const str = (v: unknown): string => printed(v, 0, newBudget())

function printed(v: unknown, depth: number, budget: Budget): string {
  if (v === undefined) return ''
  if (v === null) return 'None'
  if (v === true) return 'True'
  if (v === false) return 'False'
  if (typeof v === 'string') return v
  if (typeof v === 'number') return String(v)
  if (Array.isArray(v)) {
    const inner = deeper(depth)
    return `[${v.map((x) => repr(x, inner, budget)).join(', ')}]`
  }
  if (isDict(v)) {
    const inner = deeper(depth)
    return `{${Object.entries(v).map(([k, x]) => `${repr(k, inner, budget)}: ${repr(x, inner, budget)}`).join(', ')}}`
  }
  return String(v)
}
function repr(v: unknown, depth: number, budget: Budget): string {
  const text = typeof v === 'string' ? `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'` : printed(v, depth, budget)
  spend(budget, text.length + 2)
  return text
}

/** Python json.dumps (ensure_ascii=False), as transformers' tojson filter calls it (a RenderLimit past the limits). */
export const toJson = (v: unknown, indent?: number): string => json(v, indent, 0, newBudget())

function json(v: unknown, indent: number | undefined, level: number, budget: Budget): string {
  if (v === undefined || v === null) return 'null'
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
    const text = JSON.stringify(v)
    spend(budget, text.length)
    return text
  }
  deeper(level)
  const pad = (n: number) => (indent === undefined ? '' : '\n' + ' '.repeat(indent * n))
  const sep = indent === undefined ? ', ' : ','
  const entries = Array.isArray(v) ? v.map((x) => ['', x] as const) : Object.entries(v as Record<string, unknown>)
  spend(budget, 2 + entries.length * ((indent ?? 0) * (level + 1) + 4))
  if (Array.isArray(v)) return v.length === 0 ? '[]' : `[${pad(level + 1)}${v.map((x) => json(x, indent, level + 1, budget)).join(sep + pad(level + 1))}${pad(level)}]`
  if (entries.length === 0) return '{}'
  return `{${pad(level + 1)}${entries.map(([k, x]) => `${JSON.stringify(k)}: ${json(x, indent, level + 1, budget)}`).join(sep + pad(level + 1))}${pad(level)}}`
}

export function pyStrip(s: string, chars: unknown, side: 'both' | 'left' | 'right'): string {
  const set = typeof chars === 'string' ? chars : ' \t\n\r\f\v'
  let a = 0, b = s.length
  if (side !== 'right') while (a < b && set.includes(s[a])) a++
  if (side !== 'left') while (b > a && set.includes(s[b - 1])) b--
  return s.slice(a, b)
}

export function strftime(d: Date, fmt: string): string {
  const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December']
  const days = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
  const two = (n: number) => String(n).padStart(2, '0')
  return fmt.replace(/%([dmYbBaAHMSy%])/g, (_, c: string) => ({
    d: two(d.getDate()), m: two(d.getMonth() + 1), Y: String(d.getFullYear()), y: two(d.getFullYear() % 100),
    b: months[d.getMonth()].slice(0, 3), B: months[d.getMonth()], a: days[d.getDay()].slice(0, 3), A: days[d.getDay()],
    H: two(d.getHours()), M: two(d.getMinutes()), S: two(d.getSeconds()), '%': '%',
  })[c]!)
}
