import { isDict, Macro, MAX_LENGTH, Namespace, pyStrip, str, toJson, truthy } from './values.ts'

/**
 * Chat templates, what a template can call on its values: the string, dict and list methods, the
 * filters (`|`) and the tests (`is`), plus attribute and index access and `in`. Each failure goes
 * to `renderFail`, which names the template. `charge(n)` counts n steps of work against the
 * render's budget (a filter over a list of n items is n steps), and nothing made here is longer
 * than MAX_LENGTH.
 */
export function createBuiltins(renderFail: (msg: string) => never, charge: (work: number) => void) {
  /** Strings joined with `sep`, refused once longer than MAX_LENGTH (before the whole is made). */
  function joined(items: unknown[], sep: string): string {
    charge(items.length)
    const texts = items.map(str)
    const length = texts.reduce((n, t) => n + t.length, 0) + sep.length * Math.max(0, texts.length - 1)
    if (length > MAX_LENGTH) renderFail(`joining makes ${length} characters; at most ${MAX_LENGTH}`)
    return texts.join(sep)
  }

  /** Python's str.replace, refused when the result would pass MAX_LENGTH. */
  function replaced(text: string, old: unknown, by: unknown): string {
    if (typeof old !== 'string' || typeof by !== 'string') return renderFail('replace() takes two strings')
    const parts = text.split(old)
    const length = text.length + (parts.length - 1) * (by.length - old.length)
    if (length > MAX_LENGTH) renderFail(`replace() makes ${length} characters; at most ${MAX_LENGTH}`)
    return parts.join(by)
  }

  const own = (obj: object, key: unknown): boolean => (typeof key === 'string' || typeof key === 'number') && Object.prototype.hasOwnProperty.call(obj, key)

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
        case 'startswith': return Array.isArray(args[0]) ? args[0].some((p) => obj.startsWith(str(p))) : obj.startsWith(str(args[0]))
        case 'endswith': return Array.isArray(args[0]) ? args[0].some((p) => obj.endsWith(str(p))) : obj.endsWith(str(args[0]))
        case 'split': {
          if (args[0] === undefined || args[0] === null) return obj.split(/\s+/).filter((x) => x)
          const sep = str(args[0])
          const parts = obj.split(sep)
          const max = typeof args[1] === 'number' ? args[1] : undefined
          return max !== undefined && max >= 0 && parts.length > max + 1 ? [...parts.slice(0, max), parts.slice(max).join(sep)] : parts
        }
        case 'replace': return replaced(obj, args[0], args[1])
        case 'find': return obj.indexOf(str(args[0]))
        case 'count': return obj.split(str(args[0])).length - 1
        case 'join': return Array.isArray(args[0]) ? joined(args[0], obj) : renderFail('join() takes a list')
        case 'format': {
          const pieces = obj.split('{}')
          return joined(pieces.flatMap((p, k) => (k === 0 ? [p] : [str(args[k - 1]), p])), '')
        }
      }
    } else if (isDict(obj)) {
      switch (method) {
        case 'items': return Object.entries(obj)
        case 'keys': return Object.keys(obj)
        case 'values': return Object.values(obj)
        case 'get': return (own(obj, args[0]) ? obj[args[0] as string] : undefined) ?? args[1] ?? null
      }
    } else if (Array.isArray(obj)) {
      switch (method) {
        case 'append':
          if (obj.length >= MAX_LENGTH) renderFail(`a list of more than ${MAX_LENGTH} items`)
          obj.push(args[0])
          return null
        case 'index': return obj.indexOf(args[0])
      }
    }
    void kwargs
    return renderFail(`no method ${method}() on ${obj === undefined ? 'an undefined value' : typeof obj}`)
  }

  function getAttr(obj: unknown, key: unknown): unknown {
    if (obj === undefined || obj === null) return undefined
    if (obj instanceof Namespace) return own(obj.values, key) ? obj.values[key as string] : undefined
    if (Array.isArray(obj) || typeof obj === 'string') {
      if (typeof key === 'number') return obj[key < 0 ? obj.length + key : key]
      if (key === 'length') return undefined
      return undefined
    }
    if (isDict(obj)) return own(obj, key) ? obj[key as string] : undefined
    return undefined
  }

  function applyFilter(name: string, v: unknown, args: unknown[], kwargs: Record<string, unknown>): unknown {
    switch (name) {
      case 'trim': return pyStrip(str(v), args[0], 'both')
      case 'length': case 'count': return Array.isArray(v) || typeof v === 'string' ? v.length : isDict(v) ? Object.keys(v).length : 0
      case 'tojson': {
        const indent = kwargs.indent ?? args[0]
        if (indent !== undefined && indent !== null && !(Number.isInteger(indent) && (indent as number) >= 0)) return renderFail(`tojson(indent=${str(indent).slice(0, 20)}): indent should be a whole number`)
        return toJson(v, (indent ?? undefined) as number | undefined)
      }
      case 'upper': return str(v).toUpperCase()
      case 'lower': return str(v).toLowerCase()
      case 'capitalize': return callMethod(str(v), 'capitalize', [], {})
      case 'title': return callMethod(str(v), 'title', [], {})
      case 'default': case 'd': return v === undefined || (args[1] === true && !truthy(v)) ? args[0] : v
      case 'first': return Array.isArray(v) || typeof v === 'string' ? v[0] : undefined
      case 'last': return Array.isArray(v) || typeof v === 'string' ? v[v.length - 1] : undefined
      case 'join': return joined((Array.isArray(v) ? v : []).map((x) => (kwargs.attribute ? getAttr(x, kwargs.attribute) : x)), args[0] === undefined ? '' : str(args[0]))
      case 'string': return str(v)
      case 'int': { const n = parseInt(str(v), 10); return Number.isNaN(n) ? (args[0] ?? 0) : n }
      case 'float': { const n = parseFloat(str(v)); return Number.isNaN(n) ? (args[0] ?? 0) : n }
      case 'list': charge(Array.isArray(v) || typeof v === 'string' ? v.length : 0); return Array.isArray(v) ? [...v] : typeof v === 'string' ? Array.from(v) : isDict(v) ? Object.keys(v) : []
      case 'reverse': charge(Array.isArray(v) ? v.length : 0); return Array.isArray(v) ? [...v].reverse() : Array.from(str(v)).reverse().join('')
      case 'replace': return replaced(str(v), args[0], args[1])
      case 'items': return isDict(v) ? Object.entries(v) : []
      case 'safe': case 'e': case 'escape': return v
      case 'abs': return typeof v === 'number' ? Math.abs(v) : renderFail(`abs of ${typeof v}`)
      case 'indent': {
        const width = args[0] ?? kwargs.width ?? 4
        const first = (args[1] ?? kwargs.first ?? false) as boolean
        if (!(Number.isInteger(width) && (width as number) >= 0)) return renderFail(`indent(${str(width).slice(0, 20)}): the width should be a whole number`)
        const text = str(v)
        const lines = text.split('\n')
        if (text.length + lines.length * (width as number) > MAX_LENGTH) return renderFail(`indent(${width}) makes more than ${MAX_LENGTH} characters`)
        return lines.map((l, k) => ((k > 0 || first) && l ? ' '.repeat(width as number) + l : l)).join('\n')
      }
      case 'map': {
        const list = Array.isArray(v) ? v : []
        charge(list.length)
        if (kwargs.attribute !== undefined) return list.map((x) => getAttr(x, kwargs.attribute) ?? kwargs.default)
        return list.map((x) => applyFilter(args[0] as string, x, args.slice(1), {}))
      }
      case 'select': case 'reject': {
        const keep = name === 'select'
        charge(Array.isArray(v) ? v.length : 0)
        return (Array.isArray(v) ? v : []).filter((x) => (args.length ? runTest(args[0] as string, x, args.slice(1)) : truthy(x)) === keep)
      }
      case 'selectattr': case 'rejectattr': {
        const keep = name === 'selectattr'
        charge(Array.isArray(v) ? v.length : 0)
        return (Array.isArray(v) ? v : []).filter((x) => {
          const a = getAttr(x, args[0])
          return (args.length > 1 ? runTest(args[1] as string, a, args.slice(2)) : truthy(a)) === keep
        })
      }
      case 'unique': charge(Array.isArray(v) ? v.length : 0); return [...new Set(Array.isArray(v) ? v : [])]
      case 'sort': {
        const list = Array.isArray(v) ? v : []
        charge(list.length * Math.ceil(Math.log2(list.length + 1)))
        joined(list, '') // each item's text, counted: refused if they are too long together
        const keyed = list.map((x) => [str(x), x] as const)
        return keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, x]) => x)
      }
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
      case 'even': return typeof v === 'number' && v % 2 === 0
      case 'odd': return typeof v === 'number' && Math.abs(v % 2) === 1
      case 'divisibleby': return typeof v === 'number' && typeof args[0] === 'number' && v % args[0] === 0
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
    if (Array.isArray(container)) { charge(container.length); return container.some((x) => x === item) }
    if (isDict(container)) return own(container, item)
    if (container instanceof Namespace) return own(container.values, item)
    return false
  }

  return { callMethod, getAttr, applyFilter, runTest, contains }
}
