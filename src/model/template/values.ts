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

export const isDict = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Namespace) && !(v instanceof Macro)

export function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0
  if (isDict(v)) return Object.keys(v).length > 0
  return Boolean(v)
}

/** Python's str() of a value, as Jinja prints it. */
export function str(v: unknown): string {
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
export function toJson(v: unknown, indent?: number, level = 0): string {
  if (v === undefined || v === null) return 'null'
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v)
  const pad = (n: number) => (indent === undefined ? '' : '\n' + ' '.repeat(indent * n))
  const sep = indent === undefined ? ', ' : ','
  if (Array.isArray(v)) return v.length === 0 ? '[]' : `[${pad(level + 1)}${v.map((x) => toJson(x, indent, level + 1)).join(sep + pad(level + 1))}${pad(level)}]`
  const entries = Object.entries(v as Record<string, unknown>)
  if (entries.length === 0) return '{}'
  return `{${pad(level + 1)}${entries.map(([k, x]) => `${JSON.stringify(k)}: ${toJson(x, indent, level + 1)}`).join(sep + pad(level + 1))}${pad(level)}}`
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
