import { readFileSync } from 'node:fs'

/**
 * The `tabmesh` process's lifetime: it stops on SIGINT, SIGTERM and SIGHUP, and when the npm
 * wrapper that started it (`npx tabmesh ...`, `npm start`) goes away; its headless Chromium never
 * outlives it.
 *
 * - A long-running command (relay, start, contribute) waits in `untilStopped()` and then cleans up
 *   itself: a contributor leaves the swarm, browsers close, servers stop. If that takes longer than
 *   STOP_GRACE_MS, or a second signal comes, the process exits at once.
 * - A stop while no command waits (a browser still starting, or a one-shot command such as
 *   generate or chat) closes the registered browsers and exits with 128 + the signal's number.
 * - Every exit, however it comes, kills the Chromium processes Playwright launched (its own
 *   'exit' handler SIGKILLs their process groups); SIGKILL of this process cannot be caught, and
 *   there Chromium exits by itself when its DevTools pipe closes (Playwright's pipe transport).
 *   e2e/lifetime.spec.ts checks each of these against /proc.
 *
 * Only bin.mjs installs this (`guardProcess`); `main()` called in-process (tests) installs nothing.
 */

/** How long a command may take to clean up after a stop before the process exits anyway. */
export const STOP_GRACE_MS = 10_000
/** How long closing the browsers may take on a forced stop. */
const CLOSE_TIMEOUT_MS = 3000
/** How often the npm wrapper's liveness is checked. */
const PARENT_POLL_MS = 1000

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const
type StopSignal = keyof typeof SIGNAL_NUMBERS
/** Why the process stops: a signal, or the wrapper that started it is gone (exits as for SIGHUP). */
export type StopReason = StopSignal | 'parent-gone'

const closers = new Set<() => Promise<unknown>>()
let stopReason: StopReason | undefined
let waiters = 0
const stopListeners = new Set<() => void>()

/** Registers a browser to close when the process stops; returns the unregister function. */
export function onForcedStop(close: () => Promise<unknown>): () => void {
  closers.add(close)
  return () => closers.delete(close)
}

/** Resolves once the process is asked to stop (SIGINT, SIGTERM, SIGHUP, or the npm wrapper gone). */
export function untilStopped(): Promise<StopReason> {
  if (stopReason) return Promise.resolve(stopReason)
  waiters++
  return new Promise((resolve) => {
    stopListeners.add(() => {
      waiters--
      resolve(stopReason!)
    })
  })
}

const exitCode = (reason: StopReason) => 128 + SIGNAL_NUMBERS[reason === 'parent-gone' ? 'SIGHUP' : reason]

async function exitNow(reason: StopReason): Promise<never> {
  const closing = Promise.allSettled([...closers].map((close) => close()))
  await Promise.race([closing, new Promise((r) => setTimeout(r, CLOSE_TIMEOUT_MS))])
  process.exit(exitCode(reason)) // Playwright's 'exit' handler kills any browser still running
}

/** Asks the process to stop: the waiting command cleans up, or, if none waits, it exits now. */
export function requestStop(reason: StopReason): void {
  if (stopReason) {
    // a second request: wait for nothing (Playwright's 'exit' handler SIGKILLs the browsers)
    process.exit(exitCode(stopReason))
  }
  stopReason = reason
  if (waiters === 0) {
    void exitNow(reason)
    return
  }
  setTimeout(() => void exitNow(reason), STOP_GRACE_MS).unref()
  for (const listener of [...stopListeners]) listener()
  stopListeners.clear()
}

// ---- the npm wrapper ---------------------------------------------------------------------------

interface ProcessInfo { pid: number; ppid: number; start: string; argv: string[] }

function readProcess(pid: number): ProcessInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // after "pid (comm) ": state ppid ...
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/).filter((a) => a !== '')
    return { pid, ppid: Number(fields[1]), start: fields[19], argv }
  } catch {
    return undefined
  }
}

/** npm and npx name themselves "npm exec ...", "npm start", ... (process.title), or run as node <npm-cli.js>. */
const isNpm = (argv: string[]) => argv.slice(0, 2).some((a) => /(^|\/)(npm|npx)(-cli\.js)?$/.test(a))

/**
 * The processes from our parent up to the nearest npm or npx (e.g. sh, then `npm exec tabmesh`),
 * or [] when no npm started us: a tabmesh run from a shell, nohup or a service manager is left alone.
 */
export function npmAncestry(): ProcessInfo[] {
  const chain: ProcessInfo[] = []
  for (let pid = process.ppid; pid > 1 && chain.length < 16;) {
    const p = readProcess(pid)
    if (!p) return []
    chain.push(p)
    if (isNpm(p.argv)) return chain
    pid = p.ppid
  }
  return []
}

/**
 * Stops the process when the npm wrapper that started it goes: killing `npx tabmesh ...` kills
 * npx (and its shell), not us, and we would be left running with init as our parent. Checked by
 * pid and start time, so a reused pid is not mistaken for the wrapper.
 */
function watchNpmWrapper(): void {
  const hasProc = readProcess(process.pid) !== undefined
  if (hasProc) {
    const chain = npmAncestry()
    if (chain.length === 0) return
    setInterval(() => {
      const gone = chain.find((p) => readProcess(p.pid)?.start !== p.start)
      if (!gone || stopReason) return
      console.error(`tabmesh: ${gone.argv.slice(0, 3).join(' ')} (pid ${gone.pid}), which started this process, is gone; stopping`)
      requestStop('parent-gone')
    }, PARENT_POLL_MS).unref()
  } else if (process.env.npm_execpath) {
    // no /proc (macOS): a changed parent pid means we were reparented
    const ppid = process.ppid
    setInterval(() => {
      if (process.ppid === ppid || stopReason) return
      console.error(`tabmesh: the npm process that started this one (pid ${ppid}) is gone; stopping`)
      requestStop('parent-gone')
    }, PARENT_POLL_MS).unref()
  }
}

let guarded = false

/** Installs the signal handlers and the npm-wrapper watch (once, from bin.mjs). */
export function guardProcess(): void {
  if (guarded) return
  guarded = true
  for (const signal of Object.keys(SIGNAL_NUMBERS) as StopSignal[]) process.on(signal, () => requestStop(signal))
  // with the wrapper gone our stdout may be a closed pipe: a failed write must not cut the cleanup short
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err
    })
  }
  watchNpmWrapper()
}

/** After the command returned: exit with its code, and do not let a lingering handle hold a stopped process. */
export function finish(code: number): void {
  process.exitCode = code
  if (stopReason) setTimeout(() => process.exit(code), 2000).unref()
}

/**
 * The command failed: while stopping, that is the browser closed under it, and the exit is on its
 * way (with 128 + the signal's number), so say nothing; otherwise the error is real.
 */
export function failed(err: unknown): void {
  if (!stopReason) throw err
  process.exitCode = exitCode(stopReason)
}
