/**
 * A NAT lab built of network namespaces, for the NAT end-to-end suite.
 *
 * The calling process runs in a private network namespace of its own (`unshare -n`) that plays the
 * internet: 10.99.0.1/32 on its `lo` is where the servers (relay, site, coturn) listen. Each home i
 * gets a router namespace (WAN 10.99.<i+1>.2/24 on a veth to the internet, LAN 192.168.<i+1>.1/24)
 * and a home namespace (192.168.<i+1>.2/24, default route via its router). The internet has no
 * route to any LAN, so a home is reachable only through its router's NAT:
 *   cone      MASQUERADE: Linux keeps the source port when it can (endpoint-independent mapping,
 *             conntrack filters by address and port: a port-restricted cone);
 *   symmetric MASQUERADE --random-fully: a new random port per destination.
 * Each router drops forwarded packets from its WAN that are not part of a connection a home opened.
 * Verified here with iptables v1.8.9 (nf_tables backend); `nft` is the fallback (also verified).
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export type NatKind = 'cone' | 'symmetric'
export interface HomeSpec { name: string; nat: NatKind }
export interface LabHome {
  index: number; name: string; nat: NatKind
  /** the home's and its router's namespace names */
  ns: string; router: string
  lanAddr: string; wanAddr: string
}
export interface NatLabOptions {
  homes?: HomeSpec[]
  /** which tool writes the NAT rules; default: iptables, nft when iptables fails */
  firewall?: 'iptables' | 'nft'
}
export interface TurnOptions {
  /** TURN REST API secret; without one coturn runs with --no-auth */
  secret?: string; realm?: string; port?: number
  /** STUN only: every TURN request is ignored */
  stunOnly?: boolean
  /** coturn -v: log every session (allocations, permissions, 401s) */
  verbose?: boolean
}
export interface TurnServer {
  stunUrl: string; turnUrl: string; realm: string
  stop(): Promise<void>
  /** what coturn has logged so far */
  log(): string
}
export interface NatLab {
  prefix: string
  /** the internet address the servers listen on */
  internetAddr: string
  homes: LabHome[]
  /** the firewall tool that wrote the NAT rules */
  firewall: 'iptables' | 'nft'
  homeNs(i: number): string
  routerNs(i: number): string
  /** runs a command in a namespace to completion; throws on failure, returns stdout */
  execIn(ns: string, cmd: string, args?: string[]): string
  spawnInHome(i: number, cmd: string, args?: string[], opts?: SpawnOptions): ChildProcess
  /** an executable script that starts Chromium in home i (Playwright's executablePath) */
  chromiumWrapper(i: number, chromiumPath?: string): string
  startTurn(opts?: TurnOptions): Promise<TurnServer>
  /** kills coturn, deletes the namespaces (and so the veths), 10.99.0.1 and the temp files; idempotent */
  destroy(): Promise<void>
}

export const INTERNET_ADDR = '10.99.0.1'
export const DEFAULT_HOMES: HomeSpec[] = [{ name: 'a', nat: 'cone' }, { name: 'b', nat: 'cone' }, { name: 'c', nat: 'symmetric' }]
const NS_PREFIX = 'tmnat'

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input })
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`)
  return r.stdout
}
const ip = (...args: string[]) => run('ip', args)
const inNs = (ns: string, cmd: string, args: string[], input?: string) => run('ip', ['netns', 'exec', ns, cmd, ...args], input)

/** True when this process is root in a network namespace that holds only `lo` (started by `unshare -n`). */
export function inPrivateNetns(): boolean {
  if (process.getuid?.() !== 0) return false
  const names = ip('-o', 'link').split('\n').filter(Boolean).map((l) => l.split(':')[1]?.trim().split('@')[0])
  return names.length > 0 && names.every((n) => n === 'lo')
}

/** TURN REST API credentials (coturn --use-auth-secret): username "<expiry>:<name>", password base64(HMAC-SHA1(secret, username)). */
export function turnCredentials(secret: string, name: string, ttlSeconds = 3600, nowMs = Date.now()): { username: string; credential: string } {
  const username = `${Math.floor(nowMs / 1000) + ttlSeconds}:${name}`
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') }
}

const pidAlive = (pid: number) => {
  try { process.kill(pid, 0); return true } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM' }
}

/** Deletes the tmnat<pid>* namespaces and temp dirs of runs whose process is gone (other live runs keep theirs). */
export function deleteStaleNamespaces(): string[] {
  const dead = (re: RegExp) => (n: string | undefined) => { const m = re.exec(n ?? ''); return m !== null && !pidAlive(Number(m[1])) }
  const stale = ip('netns', 'list').split('\n').map((l) => l.split(' ')[0]).filter(dead(/^tmnat(\d+)[rh]\d+$/)) as string[]
  for (const ns of stale) spawnSync('ip', ['netns', 'del', ns])
  for (const d of readdirSync(tmpdir()).filter(dead(/^tmnat-(\d+)-/))) rmSync(join(tmpdir(), d), { recursive: true, force: true })
  return stale
}

function natRules(ns: string, nat: NatKind, wan: string, tool: 'iptables' | 'nft'): void {
  if (tool === 'iptables') {
    inNs(ns, 'iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-o', wan, '-j', 'MASQUERADE', ...(nat === 'symmetric' ? ['--random-fully'] : [])])
    inNs(ns, 'iptables', ['-A', 'FORWARD', '-i', wan, '-m', 'conntrack', '!', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'DROP'])
    // An unsolicited packet to the router itself (a peer's first hole-punching probe, before this
    // side has sent) must leave no conntrack entry: a confirmed one would take the port pair this
    // side's own probe then needs, and MASQUERADE would pick another source port, breaking the
    // mapping the peer learned over STUN. Dropped here, the entry is never confirmed.
    inNs(ns, 'iptables', ['-A', 'INPUT', '-i', wan, '-m', 'conntrack', '!', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'DROP'])
    return
  }
  inNs(ns, 'nft', ['-f', '-'], `
table ip tmnat {
  chain nat_out { type nat hook postrouting priority srcnat; oifname "${wan}" masquerade${nat === 'symmetric' ? ' fully-random' : ''}; }
  chain from_wan { type filter hook forward priority filter; ct state established,related accept; iifname "${wan}" drop; }
  chain to_router { type filter hook input priority filter; ct state established,related accept; iifname "${wan}" drop; }
}`)
}

const writeSysctl = (ns: string | null, key: string, value: string) => {
  const path = `/proc/sys/${key.replaceAll('.', '/')}`
  if (ns === null) writeFileSync(path, value)
  else inNs(ns, 'sh', ['-c', `echo ${value} > ${path}`])
}

/** Builds the lab; throws when not root or not in a private network namespace. */
export async function createNatLab(options: NatLabOptions = {}): Promise<NatLab> {
  if (process.getuid?.() !== 0) throw new Error('nat-lab: must run as root')
  if (!inPrivateNetns()) {
    throw new Error("nat-lab: the current network namespace has interfaces besides lo: run inside `unshare -n bash -c 'ip link set lo up && exec ...'`")
  }
  deleteStaleNamespaces()
  const prefix = `${NS_PREFIX}${process.pid}`
  const tmp = mkdtempSync(join(tmpdir(), `tmnat-${process.pid}-`))
  const created: string[] = []
  const children = new Set<ChildProcess>()
  let destroyed = false
  let firewall: 'iptables' | 'nft' = options.firewall ?? 'iptables'

  const cleanupSync = () => {
    if (destroyed) return
    destroyed = true
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    for (const ns of created) spawnSync('ip', ['netns', 'del', ns])
    spawnSync('ip', ['addr', 'del', `${INTERNET_ADDR}/32`, 'dev', 'lo'])
    rmSync(tmp, { recursive: true, force: true })
  }
  process.once('exit', cleanupSync)

  const homes: LabHome[] = (options.homes ?? DEFAULT_HOMES).map((h, i) => ({
    index: i, name: h.name, nat: h.nat, ns: `${prefix}h${i}`, router: `${prefix}r${i}`,
    lanAddr: `192.168.${i + 1}.2`, wanAddr: `10.99.${i + 1}.2`,
  }))
  try {
    ip('addr', 'add', `${INTERNET_ADDR}/32`, 'dev', 'lo')
    writeSysctl(null, 'net.ipv4.ip_forward', '1')
    for (const h of homes) {
      const i = h.index, n = i + 1
      for (const ns of [h.router, h.ns]) { ip('netns', 'add', ns); created.push(ns); ip('-n', ns, 'link', 'set', 'lo', 'up') }
      // internet i<i> <-> router w<i> (WAN); router l<i> <-> home h<i> (LAN)
      ip('link', 'add', `i${i}`, 'type', 'veth', 'peer', 'name', `w${i}`, 'netns', h.router)
      ip('-n', h.router, 'link', 'add', `l${i}`, 'type', 'veth', 'peer', 'name', `h${i}`, 'netns', h.ns)
      ip('addr', 'add', `10.99.${n}.1/24`, 'dev', `i${i}`)
      ip('link', 'set', `i${i}`, 'up')
      ip('-n', h.router, 'addr', 'add', `${h.wanAddr}/24`, 'dev', `w${i}`)
      ip('-n', h.router, 'addr', 'add', `192.168.${n}.1/24`, 'dev', `l${i}`)
      ip('-n', h.router, 'link', 'set', `w${i}`, 'up')
      ip('-n', h.router, 'link', 'set', `l${i}`, 'up')
      ip('-n', h.router, 'route', 'add', 'default', 'via', `10.99.${n}.1`)
      writeSysctl(h.router, 'net.ipv4.ip_forward', '1')
      ip('-n', h.ns, 'addr', 'add', `${h.lanAddr}/24`, 'dev', `h${i}`)
      ip('-n', h.ns, 'link', 'set', `h${i}`, 'up')
      ip('-n', h.ns, 'route', 'add', 'default', 'via', `192.168.${n}.1`)
      try {
        natRules(h.router, h.nat, `w${i}`, firewall)
      } catch (e) {
        if (options.firewall || firewall === 'nft') throw e
        firewall = 'nft' // iptables unusable here (legacy/nf_tables trouble): nft writes the same rules
        natRules(h.router, h.nat, `w${i}`, firewall)
      }
    }
  } catch (e) {
    cleanupSync()
    throw e
  }

  const homeAt = (i: number) => {
    const h = homes[i]
    if (!h) throw new Error(`nat-lab: no home ${i}`)
    return h
  }

  const startTurn = async (opts: TurnOptions = {}): Promise<TurnServer> => {
    const port = opts.port ?? 3478, realm = opts.realm ?? 'tabmesh', logFile = join(tmp, `turn${port}.log`)
    const args = [
      '-n', '--no-cli', '--no-tls', '--no-dtls', '--listening-ip', INTERNET_ADDR, '--relay-ip', INTERNET_ADDR,
      '--listening-port', String(port), '--min-port', '49160', '--max-port', '49260', '--realm', realm,
      '--fingerprint', '--log-file', logFile, '--simple-log', '--pidfile', join(tmp, `turn${port}.pid`),
      '--userdb', join(tmp, `turndb${port}`), ...(opts.verbose ? ['-v'] : []), '--allowed-peer-ip=10.99.0.0-10.99.255.255', '--no-multicast-peers',
      ...(opts.stunOnly ? ['--stun-only'] : opts.secret ? ['--use-auth-secret', `--static-auth-secret=${opts.secret}`] : ['--no-auth']),
    ]
    // setpriv --pdeathsig: coturn dies with this process even when it is killed outright
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', 'turnserver', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let out = '' // coturn's stdout is block-buffered in a pipe: the log file is what it flushes
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const log = () => { try { return readFileSync(logFile, 'utf8') } catch { return out } }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    const want = `${INTERNET_ADDR.split('.').reverse().map((o) => Number(o).toString(16).padStart(2, '0')).join('').toUpperCase()}:${port.toString(16).toUpperCase().padStart(4, '0')}`
    const deadline = Date.now() + 10_000
    while (!readFileSync('/proc/net/udp', 'utf8').includes(` ${want} `)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nat-lab: turnserver exited (${child.exitCode ?? child.signalCode}):\n${log()}`)
      if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`nat-lab: turnserver did not listen on ${INTERNET_ADDR}:${port}:\n${log()}`) }
      await new Promise((r) => setTimeout(r, 25))
    }
    return {
      stunUrl: `stun:${INTERNET_ADDR}:${port}`, turnUrl: `turn:${INTERNET_ADDR}:${port}?transport=udp`, realm,
      log,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM')
          const t = setTimeout(() => child.kill('SIGKILL'), 2000)
          await exited
          clearTimeout(t)
        }
        children.delete(child)
      },
    }
  }

  return {
    prefix, internetAddr: INTERNET_ADDR, homes, firewall,
    homeNs: (i) => homeAt(i).ns,
    routerNs: (i) => homeAt(i).router,
    execIn: (ns, cmd, args = []) => inNs(ns, cmd, args),
    spawnInHome: (i, cmd, args = [], opts = {}) => spawn('ip', ['netns', 'exec', homeAt(i).ns, cmd, ...args], opts),
    chromiumWrapper: (i, chromiumPath = process.env.TABMESH_CHROMIUM ?? '/usr/bin/chromium') => {
      const path = join(tmp, `chromium-${homeAt(i).name}.sh`)
      writeFileSync(path, `#!/bin/sh\nexec ip netns exec ${homeAt(i).ns} ${chromiumPath} "$@"\n`)
      chmodSync(path, 0o755)
      return path
    },
    startTurn,
    destroy: async () => {
      if (destroyed) return
      for (const c of children) {
        if (c.exitCode !== null || c.signalCode !== null) continue
        const gone = new Promise((r) => c.once('exit', r))
        c.kill('SIGTERM')
        await Promise.race([gone, new Promise((r) => setTimeout(r, 2000))])
      }
      cleanupSync()
      process.removeListener('exit', cleanupSync)
    },
  }
}
