import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { expect, test } from '@playwright/test'

/**
 * The `tabmesh` CLI's browsers never outlive it. Each case spawns the real CLI (`node bin.mjs`, or
 * `npx tabmesh` for the npm wrapper) as a contributor against this suite's `tabmesh start` (the
 * webServer of playwright.config.ts: site and relay), finds every Chromium process it started by
 * scanning /proc, stops the CLI one way or another, and checks that all of them, and the CLI, are
 * gone within a few seconds.
 *
 * Chromium's processes are found three ways, since none finds them all: the CLI runs with a unique
 * environment variable that its Chromium inherits (zygote children rewrite their environment, but
 * the browser process and its double-forked crashpad handlers keep it), every descendant of a
 * tagged process (ppid chains), and every member of a tagged browser's process group (Playwright
 * starts Chromium as a group leader).
 */
const ROOT = resolve(import.meta.dirname, '..')
const GONE_WITHIN_MS = 10_000 // "a few seconds" on a loaded 2-core machine; the measured times are logged

interface Proc { pid: number; ppid: number; pgrp: number; state: string; start: string; cmd: string; tagged: boolean }

function readProc(pid: number, tag: string): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // after "pid (comm) ": state ppid pgrp ...
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()
    let tagged = false
    try {
      tagged = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(tag)
    } catch {
      // a zombie or a process we may not read
    }
    return { pid, ppid: Number(f[1]), pgrp: Number(f[2]), state: f[0], start: f[19], cmd, tagged }
  } catch {
    return undefined // exited meanwhile
  }
}

function processes(tag: string): Proc[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map((n) => readProc(Number(n), tag)).filter((p): p is Proc => p !== undefined)
}

const isChromium = (p: Proc) => /chrom(e|ium)/.test(p.cmd.split(' ')[0] ?? '')
const alive = (p: Proc) => p.state !== 'Z' && p.state !== 'X' // pid 1 here does not reap: a zombie is gone
const key = (p: Proc) => `${p.pid}@${p.start}` // a reused pid is another process

/** The live Chromium processes the tagged CLI started: tagged ones, their descendants, their process groups. */
function chromiumOf(tag: string): Proc[] {
  const all = processes(tag).filter(alive)
  const owned = new Map(all.filter((p) => p.tagged).map((p) => [p.pid, p]))
  const groups = new Set([...owned.values()].filter(isChromium).map((p) => p.pgrp))
  for (let grown = true; grown;) {
    grown = false
    for (const p of all) {
      if (owned.has(p.pid) || !(owned.has(p.ppid) || groups.has(p.pgrp))) continue
      owned.set(p.pid, p)
      grown = true
    }
  }
  return [...owned.values()].filter(isChromium)
}

/** Every live process (CLI, npm, shell, Chromium) among `recorded`, in a recorded browser's process group, or carrying the tag. */
function survivors(tag: string, recorded: Proc[]): Proc[] {
  const want = new Set(recorded.map(key))
  const groups = new Set(recorded.filter((p) => isChromium(p) && p.pgrp === p.pid).map((p) => p.pgrp)) // children started after the snapshot
  return processes(tag).filter(alive).filter((p) => p.tagged || want.has(key(p)) || groups.has(p.pgrp))
}

interface Cli {
  child: ChildProcess
  tag: string
  stdout: string[]
  stderr: string[]
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves with the first stdout line matching `pattern`. */
  line(pattern: RegExp, timeoutMs?: number): Promise<string>
}

function spawnCli(command: 'node' | 'npx', args: string[]): Cli {
  const tag = `TABMESH_LIFETIME_TEST=${randomUUID()}`
  const [file, argv] = command === 'node'
    ? [process.execPath, [join(ROOT, 'src/nodejs/cli/bin.mjs'), ...args]]
    : ['npx', ['--yes', 'tabmesh', ...args]]
  const child = spawn(file, argv, {
    cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, [tag.split('=')[0]]: tag.split('=')[1], TABMESH_SITE_DIR: process.env.TABMESH_SITE_DIR ?? join(ROOT, 'dist-lab') },
  })
  const stdout: string[] = []
  const stderr: string[] = []
  const waiting = new Set<{ pattern: RegExp; resolve: (line: string) => void }>()
  createInterface({ input: child.stdout! }).on('line', (l) => {
    stdout.push(l)
    for (const w of waiting) {
      if (!w.pattern.test(l)) continue
      waiting.delete(w)
      w.resolve(l)
    }
  })
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })))
  return {
    child, tag, stdout, stderr, exited,
    line(pattern, timeoutMs = 60_000) {
      const seen = stdout.find((l) => pattern.test(l))
      if (seen) return Promise.resolve(seen)
      const output = () => `\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`
      return new Promise((resolveLine, reject) => {
        const timer = setTimeout(() => waiting.delete(w) && reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms${output()}`)), timeoutMs)
        const w = { pattern, resolve: (line: string) => (clearTimeout(timer), resolveLine(line)) }
        waiting.add(w)
        void exited.then(({ code, signal }) => {
          if (!waiting.delete(w)) return
          clearTimeout(timer)
          reject(new Error(`the CLI exited (${code ?? signal}) before printing ${pattern}${output()}`))
        })
      })
    },
  }
}

/** The CLI's node process: the child itself, or under npx the tagged process running bin.mjs. */
function cliNodePid(cli: Cli): number {
  const own = processes(cli.tag).filter(alive).filter((p) => p.tagged && /bin[/.](mjs|tabmesh)|\/\.bin\/tabmesh/.test(p.cmd) && !/^npm /.test(p.cmd))
  const node = own.find((p) => /node/.test(p.cmd.split(' ')[0]))
  if (!node) throw new Error(`no node process of the CLI among ${JSON.stringify(processes(cli.tag).filter((p) => p.tagged).map((p) => p.cmd))}`)
  return node.pid
}

/** Waits until none of `recorded`, and no process carrying the tag, is alive; returns the ms it took. */
async function allGone(cli: Cli, recorded: Proc[], since: number): Promise<number> {
  let left = survivors(cli.tag, recorded)
  while (left.length > 0 && Date.now() - since < GONE_WITHIN_MS) {
    await new Promise((r) => setTimeout(r, 50))
    left = survivors(cli.tag, recorded)
  }
  const ms = Date.now() - since
  expect(left.map((p) => `${p.pid} ${p.state} ${p.cmd.slice(0, 100)}`), `still running ${GONE_WITHIN_MS} ms after the stop\nstderr:\n${cli.stderr.join('\n')}`).toEqual([])
  return ms
}

test.skip(!existsSync('/proc/self/stat'), 'finds processes through /proc (Linux)')

const clis: Cli[] = []
test.afterEach(async () => {
  // whatever a failed case left behind goes: first the CLIs, then anything still tagged
  for (const cli of clis.splice(0)) {
    for (const p of survivors(cli.tag, chromiumOf(cli.tag))) {
      try {
        process.kill(p.pid, 'SIGKILL')
      } catch {
        // gone meanwhile
      }
    }
  }
})

async function contributor(command: 'node' | 'npx', relay: string): Promise<{ cli: Cli; chromium: Proc[] }> {
  const cli = spawnCli(command, ['contribute', '--relay', relay, '--backend', 'ref'])
  clis.push(cli)
  await cli.line(/"contributing"/)
  const chromium = chromiumOf(cli.tag)
  expect(chromium.length, 'the contributor runs Chromium processes').toBeGreaterThanOrEqual(2)
  expect(chromium.some((p) => / --type=renderer/.test(p.cmd)), 'among them a renderer (the contributing page)').toBe(true)
  return { cli, chromium }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`contribute: on ${signal} the CLI leaves the swarm, closes Chromium and exits`, async ({ baseURL }) => {
    const { cli, chromium } = await contributor('node', baseURL!)
    const at = Date.now()
    cli.child.kill(signal)
    const ms = await allGone(cli, chromium, at)
    console.log(`${signal}: the CLI and its ${chromium.length} Chromium processes gone after ${ms} ms`)
    const { code } = await cli.exited
    const goodbye = cli.stdout.find((l) => /^\{"stopped":/.test(l))
    expect(goodbye, `it left the swarm and said so\nstdout:\n${cli.stdout.join('\n')}\nstderr:\n${cli.stderr.join('\n')}`).toBeDefined()
    expect(JSON.parse(goodbye!).stopped).toMatchObject({ startedAt: expect.any(Number) }) // its totals
    expect(code).toBe(0)
    expect(cli.stderr.join('\n')).not.toMatch(/closed|Error/)
  })
}

test('contribute: when the node process is SIGKILLed, its Chromium goes too', async ({ baseURL }) => {
  const { cli, chromium } = await contributor('node', baseURL!)
  const at = Date.now()
  cli.child.kill('SIGKILL')
  const ms = await allGone(cli, chromium, at)
  console.log(`SIGKILL of node: its ${chromium.length} Chromium processes gone after ${ms} ms`)
})

test('npx tabmesh contribute: when the npx wrapper is SIGTERMed, the CLI and its Chromium go', async ({ baseURL }) => {
  const { cli, chromium } = await contributor('npx', baseURL!)
  const nodePid = cliNodePid(cli)
  expect(nodePid).not.toBe(cli.child.pid) // npx runs the CLI as a child (through sh)
  const recorded = [...chromium, readProc(nodePid, cli.tag)!]
  const at = Date.now()
  cli.child.kill('SIGTERM') // the wrapper only
  const ms = await allGone(cli, recorded, at)
  console.log(`SIGTERM of npx: the CLI (pid ${nodePid}) and its ${chromium.length} Chromium processes gone after ${ms} ms`)
})

test('a signal while the CLI is still starting its browser closes it as well', async ({ baseURL }) => {
  const cli = spawnCli('node', ['contribute', '--relay', baseURL!, '--backend', 'ref'])
  clis.push(cli)
  // as soon as a Chromium process of the CLI exists: the page is still loading, nothing contributes yet
  let chromium: Proc[] = []
  await expect.poll(() => (chromium = chromiumOf(cli.tag)).length, { timeout: 30_000, intervals: [20] }).toBeGreaterThan(0)
  expect(cli.stdout.some((l) => /"contributing"/.test(l))).toBe(false)
  const at = Date.now()
  cli.child.kill('SIGTERM')
  const ms = await allGone(cli, chromium, at)
  console.log(`SIGTERM during start-up: gone after ${ms} ms`)
  const { code, signal } = await cli.exited
  expect({ code, signal }).toEqual({ code: 143, signal: null }) // 128 + SIGTERM, as a shell reports it
  expect(cli.stderr.join('\n')).not.toMatch(/\n\s+at /) // no stack trace
})

test('tabmesh start: its contributor browsers go with it on SIGKILL and on SIGTERM', async () => {
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    const cli = spawnCli('node', ['start', '--port', '0', '--contributors', '1', '--site-dir', process.env.TABMESH_SITE_DIR ?? join(ROOT, 'dist-lab')])
    clis.push(cli)
    await cli.line(/^open http/)
    const chromium = chromiumOf(cli.tag)
    expect(chromium.length).toBeGreaterThanOrEqual(2)
    const at = Date.now()
    cli.child.kill(signal)
    const ms = await allGone(cli, chromium, at)
    console.log(`tabmesh start, ${signal}: its ${chromium.length} Chromium processes gone after ${ms} ms`)
    if (signal === 'SIGTERM') expect((await cli.exited).code).toBe(0)
  }
})
