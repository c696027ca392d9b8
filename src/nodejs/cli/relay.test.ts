import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'

const running: ChildProcess[] = []
afterEach(() => {
  for (const child of running.splice(0)) child.kill('SIGTERM')
})

/** Runs `tabmesh <args>` and collects stdout lines until `done` says enough. */
function tabmesh(args: string[], done: (lines: string[]) => boolean): Promise<string[]> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'bin.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  running.push(child)
  const lines: string[] = []
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line)
      if (done(lines)) resolve(lines)
    })
    let stderr = ''
    child.stderr!.on('data', (d) => (stderr += d))
    child.once('exit', (code) => reject(new Error(`tabmesh ${args.join(' ')} exited with ${code}: ${stderr}`)))
  })
}

const RELAY_ADDR = /^relay (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\/12D3KooW\w+)$/

describe('tabmesh relay and start', () => {
  it('`tabmesh relay` prints its ws multiaddr on 127.0.0.1', async () => {
    const lines = await tabmesh(['relay', '--port', '0'], (l) => l.some((x) => RELAY_ADDR.test(x)))
    expect(lines.find((x) => RELAY_ADDR.test(x))).toBeTruthy()
  })

  it('`tabmesh start` runs the relay beside the site and tells tabs where it is (GET /relay)', async () => {
    const site = mkdtempSync(join(tmpdir(), 'tabmesh-site-'))
    writeFileSync(join(site, 'index.html'), '<!doctype html><title>t</title>')
    const lines = await tabmesh(['start', '--port', '0', '--site-dir', site, '--contributors', '0'], (l) => l.some((x) => x.startsWith('open ')))
    const url = lines.find((x) => x.startsWith('open '))!.slice(5)
    const printed = lines.map((x) => RELAY_ADDR.exec(x)?.[1]).filter(Boolean)
    const res = await fetch(new URL('/relay', url))
    expect(res.headers.get('cross-origin-embedder-policy')).toBe('require-corp')
    const info = (await res.json()) as { peerId: string; multiaddrs: string[] }
    expect(info.multiaddrs).toEqual(printed)
    expect(info.multiaddrs[0].endsWith(`/p2p/${info.peerId}`)).toBe(true)
  })

  it('reports a taken relay port as a user error', async () => {
    const lines = await tabmesh(['relay', '--port', '0'], (l) => l.some((x) => RELAY_ADDR.test(x)))
    const port = /tcp\/(\d+)/.exec(lines[0])![1]
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [join(import.meta.dirname, 'bin.mjs'), 'relay', '--port', port], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      child.once('exit', (code) => resolve({ code, stderr }))
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/cannot run the libp2p relay on 127\.0\.0\.1:\d+: EADDRINUSE/)
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })
})
