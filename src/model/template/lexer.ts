/**
 * Chat templates, step 1: the template's text into parts (literal text, {{ output }} and {% block %}
 * tags, each tag's expression tokens), with Jinja's whitespace control and transformers' trim_blocks
 * and lstrip_blocks applied on the way. Comments ({# #}) are dropped here.
 */

export type Tok =
  | { kind: 'name'; value: string; pos: number }
  | { kind: 'string'; value: string; pos: number }
  | { kind: 'number'; value: number; pos: number }
  | { kind: 'op'; value: string; pos: number }
  | { kind: 'end'; pos: number }

export type Part =
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

export function lex(template: string, fail: (msg: string, pos: number) => never): Part[] {
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
