/**
 * `tabmesh audit verify`: the offline check of an audit export (a tab's trust log, saved from its
 * page), with the same verifyAuditChain the tabs use. Exit 1 means only that the chain is broken,
 * so a script can tell a tampered log from a missing file.
 */
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { clip, quoted, TabmeshError } from '../../core/errors.ts'
import { verifyAuditChain } from '../../trust/audit.ts'

export const AUDIT_USAGE = `tabmesh audit verify <export.json>   check a tab's exported audit log: its hash chain is whole and unchanged
                         prints "ok: N entries, head <hash>" (exit 0), or which entry was changed, removed or
                         moved (exit 1); a file that cannot be read or is not JSON, or a wrong argument, exits 2`

/** `tabmesh audit`'s arguments, checked: a wrong subcommand, flag or file count is a 'bad-argument' error. */
export function parseAuditArgs(argv: string[]) {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: { help: { type: 'boolean', default: false } }, strict: true, allowPositionals: true })
  } catch (err) {
    throw new TabmeshError('bad-argument', clip((err as Error).message, 300))
  }
  if (parsed.values.help) return { help: true as const }
  const [sub, ...files] = parsed.positionals
  if (sub === undefined) throw new TabmeshError('bad-argument', 'audit: give a subcommand: tabmesh audit verify <export.json>')
  if (sub !== 'verify') throw new TabmeshError('bad-argument', `audit: unknown subcommand ${quoted(sub, 40)}; use: tabmesh audit verify <export.json>`)
  if (files.length !== 1) throw new TabmeshError('bad-argument', `audit verify takes one export file, not ${files.length}`)
  return { help: false as const, file: files[0] }
}

export async function auditCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const args = parseAuditArgs(argv)
  if (args.help) {
    out(AUDIT_USAGE)
    return 0
  }
  let text: string
  try {
    text = await readFile(args.file, 'utf8')
  } catch (err) {
    throw new TabmeshError('bad-argument', `cannot read ${clip(args.file, 200)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  let input: unknown
  try {
    input = JSON.parse(text)
  } catch (err) {
    throw new TabmeshError('bad-argument', `${clip(args.file, 200)} is not JSON: ${clip((err as Error).message.split('\n')[0], 120)}`)
  }
  const verdict = await verifyAuditChain(input)
  if (verdict.ok) {
    out(`ok: ${verdict.entries} entries, head ${verdict.head}`)
    return 0
  }
  out(`${verdict.problem.kind}: ${verdict.problem.message}`)
  return 1
}
