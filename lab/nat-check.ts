/**
 * Proves the NAT lab (nat-lab.ts) behaves as designed. Run from the repository root:
 *   unshare -n bash -c 'ip link set lo up && exec npx tsx lab/nat-check.ts'
 * (NAT_LAB_FIREWALL=nft writes the rules with nft instead of iptables). One line per check;
 * exits non-zero when one fails.
 */
import { spawn } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { createNatLab, INTERNET_ADDR, turnCredentials, type LabHome, type NatLab } from './nat-lab.ts'

const PROBE = fileURLToPath(new URL('./stun-probe.mjs', import.meta.url))
const SECRET = 'nat-check-secret'
const MAGIC = 0x2112a442
let failures = 0
const check = (name: string, ok: boolean, detail = '') => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `  [${detail}]` : ''}`)
  if (!ok) failures++
}

interface Ran { code: number | null; out: string; ms: number }
/** Runs a command (in a namespace when `ns` is given) without blocking this process's servers. */
function run(ns: string | null, cmd: string, args: string[], timeoutMs = 15_000, onLine?: (line: string) => void): Promise<Ran> {
  const t0 = Date.now()
  const child = ns ? spawn('ip', ['netns', 'exec', ns, cmd, ...args]) : spawn(cmd, args)
  let out = '', partial = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d
    const lines = (partial + d).split('\n')
    partial = lines.pop() ?? ''
    for (const l of lines) onLine?.(l)
  })
  child.stderr.on('data', (d: Buffer) => { out += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  return new Promise((resolve) => child.once('close', (code) => { clearTimeout(timer); resolve({ code, out, ms: Date.now() - t0 }) }))
}

/** A tiny STUN responder: answers Binding requests with XOR-MAPPED-ADDRESS. */
async function stunResponder(port: number): Promise<Socket> {
  const sock = createSocket('udp4')
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 20 || msg.readUInt16BE(0) !== 0x0001 || msg.readUInt32BE(4) !== MAGIC) return
    const res = Buffer.alloc(32)
    res.writeUInt16BE(0x0101, 0); res.writeUInt16BE(12, 2); res.writeUInt32BE(MAGIC, 4); msg.copy(res, 8, 8, 20)
    res.writeUInt16BE(0x0020, 20); res.writeUInt16BE(8, 22); res.writeUInt16BE(0x0001, 24)
    res.writeUInt16BE(rinfo.port ^ (MAGIC >>> 16), 26)
    const addr = rinfo.address.split('.').reduce((a, o) => a * 256 + Number(o), 0)
    res.writeUInt32BE((addr ^ MAGIC) >>> 0, 28)
    sock.send(res, rinfo.port, rinfo.address)
  })
  await new Promise<void>((r) => sock.bind(port, INTERNET_ADDR, r))
  return sock
}

interface Mapped { address: string; port: number }
async function stunMapping(lab: NatLab, h: LabHome) {
  const r = await run(h.ns, 'node', [PROBE, `${INTERNET_ADDR}:3478`, `${INTERNET_ADDR}:3479`])
  const j = JSON.parse(r.out.trim().split('\n')[0] ?? '{}') as { local: Mapped; results: { mapped?: Mapped }[] }
  const [m1, m2] = j.results.map((x) => x.mapped)
  const ipOk = m1?.address === h.wanAddr && m2?.address === h.wanAddr
  const same = m1?.port === m2?.port
  check(`stun ${h.name} (${h.nat}): mapped ${m1?.address}:${m1?.port} / ${m2?.address}:${m2?.port} from local port ${j.local.port}`,
    !!m1 && !!m2 && ipOk && (h.nat === 'cone' ? same : !same), h.nat === 'cone' ? 'want same port' : 'want different ports')
}

/** The router lets back a datagram from the address:port the home wrote to, and nothing else. */
async function filtering(h: LabHome, responder: Socket) {
  const other = createSocket('udp4')
  await new Promise<void>((r) => other.bind(0, INTERNET_ADDR, r))
  const got: string[] = []
  await run(h.ns, 'node', [PROBE, '--listen', '800', `${INTERNET_ADDR}:3479`], 10_000, (line) => {
    let j: { results?: { mapped?: Mapped }[]; received?: string } = {}
    try { j = JSON.parse(line) } catch { console.log(`  probe: ${line}`) }
    const m = j.results?.[0]?.mapped
    if (m) { responder.send('from-3479', m.port, m.address); other.send('from-other-port', m.port, m.address) }
    if (j.received) got.push(j.received)
  })
  other.close()
  check(`filter ${h.name}: only the contacted address:port gets through`, got.includes('from-3479') && !got.includes('from-other-port'), `received ${JSON.stringify(got)}`)
}

async function main() {
  const t0 = Date.now()
  const lab = await createNatLab({ firewall: process.env.NAT_LAB_FIREWALL === 'nft' ? 'nft' : undefined })
  const tCreate = Date.now() - t0
  let listener: ReturnType<typeof spawn> | undefined
  try {
    const t1 = Date.now()
    const turn = await lab.startTurn({ secret: SECRET })
    const tTurn = Date.now() - t1
    check(`lab created with ${lab.firewall} in ${tCreate} ms; coturn listening in ${tTurn} ms`, tCreate + tTurn < 5000)
    const responder = await stunResponder(3479)
    const http = createServer((req, res) => res.end(`<p id="from">${req.socket.remoteAddress}</p>`))
    await new Promise<void>((r) => http.listen(8080, INTERNET_ADDR, r))

    for (const h of lab.homes) await stunMapping(lab, h)
    for (const h of lab.homes) await filtering(h, responder)

    for (const h of lab.homes) {
      const r = await run(h.ns, 'curl', ['-s', '-m', '3', `http://${INTERNET_ADDR}:8080/`])
      check(`http ${h.name} -> ${INTERNET_ADDR}:8080 seen from ${r.out.replace(/<[^>]+>/g, '')}`, r.code === 0 && r.out.includes(h.wanAddr))
    }

    // home b listens on 8082; its router reaches it, home a and the internet do not
    const [a, b] = lab.homes as [LabHome, LabHome]
    listener = spawn('ip', ['netns', 'exec', b.ns, 'node', '-e', "require('net').createServer((s) => s.end('HTTP/1.0 200 OK\\r\\n\\r\\nhi')).listen(8082)"])
    const url = `http://${b.lanAddr}:8082/`
    let ctl: Ran = { code: 1, out: '', ms: 0 }
    for (let i = 0; i < 50 && ctl.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      ctl = await run(b.router, 'curl', ['-s', '-m', '1', url])
    }
    check(`control: router ${b.name} reaches ${url}`, ctl.code === 0 && ctl.out === 'hi')
    const ab = await run(a.ns, 'curl', ['-s', '-m', '2', url])
    check(`isolation: home ${a.name} cannot reach home ${b.name}'s LAN ${url}`, ab.code !== 0, `curl exit ${ab.code}`)
    const ib = await run(null, 'curl', ['-s', '-m', '2', url])
    check(`isolation: the internet has no route to ${url}`, ib.code !== 0, `curl exit ${ib.code}`)
    lab.execIn(lab.routerNs(0), 'true') // execIn works
    await run(null, 'ip', ['route', 'add', `${b.lanAddr}/32`, 'via', b.wanAddr])
    const unsol = await run(null, 'curl', ['-s', '-m', '2', url])
    await run(null, 'ip', ['route', 'del', `${b.lanAddr}/32`, 'via', b.wanAddr])
    check(`unsolicited: with a route via router ${b.name}'s WAN, ${url} is still dropped`, unsol.code === 28, `curl exit ${unsol.code} (28 = timeout)`)

    // turnutils_uclient -y: two allocations that relay to each other (like two symmetric-NAT tabs)
    await Promise.all(lab.homes.map(async (h) => {
      const c = turnCredentials(SECRET, `user-${h.name}`, 600)
      const r = await run(h.ns, 'turnutils_uclient', ['-u', c.username, '-w', c.credential, '-y', '-n', '2', '-c', INTERNET_ADDR])
      check(`turn ${h.name}: Allocate + relay client-to-client with REST credentials (${r.ms} ms)`, r.code === 0 && /Total lost packets 0 /.test(r.out), r.code === 0 ? '' : r.out.slice(-300))
    }))
    const good = turnCredentials(SECRET, 'mallory', 600)
    const bad = await run(a.ns, 'turnutils_uclient', ['-u', good.username, '-w', 'wrong', '-y', '-n', '1', '-c', INTERNET_ADDR])
    const expired = turnCredentials(SECRET, 'late', -60)
    const exp = await run(a.ns, 'turnutils_uclient', ['-u', expired.username, '-w', expired.credential, '-y', '-n', '1', '-c', INTERNET_ADDR])
    const refused = (user: string) => turn.log().includes(`Cannot find credentials of user <${user}>`)
    check(`turn: a wrong password is refused (${bad.ms} ms)`, bad.code !== 0 && /Cannot complete Allocation/.test(bad.out) && refused(good.username))
    check(`turn: only the bad users were refused`, lab.homes.every((h) => !turn.log().includes(`:user-${h.name}>`)))
    check(`turn: expired REST credentials are refused (${exp.ms} ms)`, exp.code !== 0 && refused(expired.username))

    const stunOnly = await lab.startTurn({ port: 3490, stunOnly: true })
    const so = await run(a.ns, 'node', [PROBE, `${INTERNET_ADDR}:3490`])
    const soTurn = await run(a.ns, 'turnutils_uclient', ['-u', good.username, '-w', good.credential, '-y', '-n', '1', '-c', '-p', '3490', INTERNET_ADDR], 4000)
    check(`stunOnly: ${stunOnly.stunUrl} answers Binding, refuses Allocate (no answer in ${soTurn.ms} ms)`, so.code === 0 && so.out.includes(a.wanAddr) && soTurn.code !== 0)
    await stunOnly.stop()

    const wrapper = lab.chromiumWrapper(1)
    const cr = await run(null, wrapper, ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--virtual-time-budget=2000', '--dump-dom', `http://${INTERNET_ADDR}:8080/`], 60_000)
    check(`chromium via ${wrapper.split('/').pop()} loads ${INTERNET_ADDR}:8080 from ${b.wanAddr} (${cr.ms} ms)`, cr.out.includes(`<p id="from">${b.wanAddr}</p>`), cr.code === 0 ? '' : cr.out.slice(-300))

    await turn.stop()
    responder.close()
    http.close()
  } finally {
    listener?.kill()
    const t2 = Date.now()
    await lab.destroy()
    await lab.destroy() // idempotent
    const tDestroy = Date.now() - t2
    const left = (await run(null, 'ip', ['netns', 'list'])).out.split('\n').filter((l) => l.startsWith(lab.prefix))
    const addrGone = !(await run(null, 'ip', ['-o', 'addr', 'show', 'dev', 'lo'])).out.includes(INTERNET_ADDR)
    const udpGone = !readFileSync('/proc/net/udp', 'utf8').includes('0100630A:')
    check(`destroy in ${tDestroy} ms: no ${lab.prefix} namespaces, ${INTERNET_ADDR} and coturn gone`, left.length === 0 && addrGone && udpGone, left.join(','))
    const again = await createNatLab().then(async (l) => { await l.destroy(); return l.homes.length }, (e: Error) => e.message)
    check('a new lab can be built in this namespace after destroy', again === 3, String(again))
  }
}

await main()
console.log(failures === 0 ? 'nat-check: all passed' : `nat-check: ${failures} failed`)
process.exit(failures === 0 ? 0 : 1)
