import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openAuditLog } from '../../trust/audit.ts'
import { main } from './main.ts'

const tmp = mkdtempSync(join(tmpdir(), 'tabmesh-audit-'))

/** `tabmesh <args>` in-process: the exit code and what it printed. */
async function tabmesh(args: string[]) {
  const stdout: string[] = []
  const stderr: string[] = []
  const code = await main(args, (l) => stdout.push(l), (l) => stderr.push(l))
  return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n') }
}

async function writeExports() {
  const log = await openAuditLog()
  await log.append('session', { modelId: 'stories260K', route: ['a', 'b'] })
  for (let i = 0; i < 5; i++) await log.append('check', { peerId: 'a', layers: [0, 3], positions: [i * 8, i * 8 + 8], outcome: 'passed' })
  const good = log.export()
  const tampered = structuredClone(good)
  tampered.entries[3].data.outcome = 'failed'
  writeFileSync(join(tmp, 'good.json'), JSON.stringify(good, null, 2))
  writeFileSync(join(tmp, 'tampered.json'), JSON.stringify(tampered))
  writeFileSync(join(tmp, 'garbage.json'), '{"format": "tabmesh-audit", ')
  return good
}

describe('tabmesh audit verify', () => {
  it('exits 0 for a whole chain, 1 for a tampered one, 2 for a file it cannot read or arguments it cannot use', async () => {
    const good = await writeExports()

    const ok = await tabmesh(['audit', 'verify', join(tmp, 'good.json')])
    expect(ok).toEqual({ code: 0, stdout: `ok: 6 entries, head ${good.head}`, stderr: '' })

    const bad = await tabmesh(['audit', 'verify', join(tmp, 'tampered.json')])
    expect(bad.code).toBe(1)
    expect(bad.stdout).toBe('tampered: entry 3 (seq 3) was changed after it was written: its hash does not match its content')

    const userErrors: [string[], RegExp][] = [
      [['audit', 'verify', join(tmp, 'none.json')], /^tabmesh: cannot read .*none\.json: ENOENT$/],
      [['audit', 'verify', join(tmp, 'garbage.json')], /^tabmesh: .*garbage\.json is not JSON: /],
      [['audit', 'verify'], /audit verify takes one export file, not 0/],
      [['audit', 'verify', 'a.json', 'b.json'], /audit verify takes one export file, not 2/],
      [['audit'], /give a subcommand/],
      [['audit', 'check', 'a.json'], /unknown subcommand "check"/],
      [['audit', 'verify', '--bogus', 'a.json'], /Unknown option '--bogus'/],
    ]
    for (const [args, message] of userErrors) {
      const r = await tabmesh(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(message)
      expect(r.stderr.split('\n')).toHaveLength(1)
    }

    const help = await tabmesh(['audit', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/tabmesh audit verify <export\.json>/)
    expect((await tabmesh(['help'])).stdout).toMatch(/tabmesh audit verify/)
  })

  it('runs as the real `tabmesh` command', async () => {
    await writeExports()
    const run = (file: string) => spawnSync(process.execPath, [join(import.meta.dirname, 'bin.mjs'), 'audit', 'verify', join(tmp, file)], { encoding: 'utf8', timeout: 60_000 })
    const ok = run('good.json')
    expect(ok.status).toBe(0)
    expect(ok.stdout).toMatch(/^ok: 6 entries, head [0-9a-f]{64}\n$/)
    const bad = run('tampered.json')
    expect(bad.status).toBe(1)
    expect(bad.stdout).toMatch(/entry 3 \(seq 3\) was changed/)
  })
})
