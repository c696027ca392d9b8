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
  const tagOpen = /\{[{%#]/g // searched from i with lastIndex (a search of template.slice(i) re-reads the rest each time)
  while (i <= template.length) {
    tagOpen.lastIndex = i
    const found = tagOpen.exec(template)
    const open = found ? found.index - i : -1
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
    // trimEnd and a loop, not /\s+$/ or /[ \t]*$/: those regexes backtrack quadratically over long runs of spaces
    if (stripBefore) text = text.trimEnd()
    else if (kind !== '{' && !keepBefore) {
      // lstrip_blocks: a block tag alone on its line takes the line's indentation with it
      // (scanning back over spaces and tabs only: a lastIndexOf('\n') would read back to the start on a line of many tags)
      let lineStart = at
      while (lineStart > i && (template[lineStart - 1] === ' ' || template[lineStart - 1] === '\t')) lineStart--
      if (lineStart === 0 || (lineStart >= i && template[lineStart - 1] === '\n')) {
        let end = text.length
        while (end > 0 && (text[end - 1] === ' ' || text[end - 1] === '\t')) end--
        text = text.slice(0, end)
      }
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
