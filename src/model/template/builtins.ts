import { isDict, Macro, Namespace, pyStrip, str, toJson, truthy } from './values.ts'

/**
 * Chat templates, what a template can call on its values: the string, dict and list methods, the
 * filters (`|`) and the tests (`is`), plus attribute and index access and `in`. Each failure goes
 * to `renderFail`, which names the template.
 */
export function createBuiltins(renderFail: (msg: string) => never) {
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

  return { callMethod, getAttr, applyFilter, runTest, contains }
}
