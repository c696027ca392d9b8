#!/usr/bin/env node
/**
 * A minimal RFC 5389 STUN client for the NAT lab (plain JS, no dependencies), run inside a home:
 *   node lab/stun-probe.mjs 10.99.0.1:3478 10.99.0.1:3479
 * sends a Binding request from ONE local UDP socket to each server and prints one JSON line:
 *   {"local":{"address":"0.0.0.0","port":40000},"results":[{"server":"10.99.0.1:3478","mapped":{"address":"10.99.1.2","port":40000}}, ...]}
 * A server that does not answer (3 tries, 400 ms apart) gets {"server", "error"}.
 * Exits 0 when every server answered. With --listen <ms> (first argument) it then keeps the socket
 * open that long and prints one more JSON line for every other datagram that reaches it:
 *   {"received":"<text>","from":{"address":"10.99.0.1","port":3479}}
 * (the NAT lab's check sends unsolicited datagrams to the mapping to test the router's filtering).
 */
import { createSocket } from 'node:dgram'
import { randomBytes } from 'node:crypto'

const MAGIC = 0x2112a442
const argv = process.argv.slice(2)
const listenMs = argv[0] === '--listen' ? Number(argv.splice(0, 2)[1]) : 0
const servers = argv.map((s) => {
  const [host, port] = s.split(':')
  return { host, port: Number(port ?? 3478), key: s }
})
if (servers.length === 0) {
  console.error('usage: node lab/stun-probe.mjs host:port [host:port ...]')
  process.exit(2)
}

function bindingRequest() {
  const msg = Buffer.alloc(20)
  msg.writeUInt16BE(0x0001, 0) // Binding request
  msg.writeUInt16BE(0, 2) // no attributes
  msg.writeUInt32BE(MAGIC, 4)
  randomBytes(12).copy(msg, 8)
  return msg
}

/** XOR-MAPPED-ADDRESS (0x0020), or MAPPED-ADDRESS (0x0001) from an old server, of a Binding success response. */
function parseMapped(msg) {
  if (msg.length < 20 || msg.readUInt16BE(0) !== 0x0101 || msg.readUInt32BE(4) !== MAGIC) return null
  let off = 20
  const end = 20 + msg.readUInt16BE(2)
  let plain = null
  while (off + 4 <= end && off + 4 <= msg.length) {
    const type = msg.readUInt16BE(off), len = msg.readUInt16BE(off + 2), v = off + 4
    if ((type === 0x0020 || type === 0x0001) && msg[v + 1] === 0x01) {
      let port = msg.readUInt16BE(v + 2), addr = msg.readUInt32BE(v + 4)
      if (type === 0x0020) { port ^= MAGIC >>> 16; addr = (addr ^ MAGIC) >>> 0 }
      const address = [24, 16, 8, 0].map((s) => (addr >>> s) & 255).join('.')
      if (type === 0x0020) return { address, port }
      plain = { address, port }
    }
    off = v + len + ((4 - (len % 4)) % 4)
  }
  return plain
}

const sock = createSocket('udp4')
const pending = new Map() // transaction id (hex) -> server
const results = new Map()
sock.on('message', (msg, rinfo) => {
  if (msg.length < 20 || msg.readUInt32BE(4) !== MAGIC) {
    if (results.size === servers.length) console.log(JSON.stringify({ received: msg.toString(), from: { address: rinfo.address, port: rinfo.port } }))
    return
  }
  const id = msg.subarray(8, 20).toString('hex')
  const server = pending.get(id)
  if (!server || results.has(server.key)) return
  const mapped = parseMapped(msg)
  if (mapped) results.set(server.key, { server: server.key, mapped })
})

await new Promise((resolve) => sock.bind(0, resolve))
for (let attempt = 0; attempt < 3 && results.size < servers.length; attempt++) {
  for (const server of servers) {
    if (results.has(server.key)) continue
    const req = bindingRequest()
    pending.set(req.subarray(8, 20).toString('hex'), server)
    sock.send(req, server.port, server.host)
  }
  const until = Date.now() + 400
  while (Date.now() < until && results.size < servers.length) await new Promise((r) => setTimeout(r, 10))
}
const out = servers.map((s) => results.get(s.key) ?? { server: s.key, error: 'no answer' })
console.log(JSON.stringify({ local: sock.address(), results: out }))
if (listenMs > 0) await new Promise((r) => setTimeout(r, listenMs))
sock.close()
process.exitCode = out.every((r) => r.mapped) ? 0 : 1
