/**
 * The nodejs room: everything that runs only in Node — the relay (libp2p signalling, gossip, the
 * HTTP site and model registry: relay/), the `tabmesh` CLI (cli/), the models directory on disk,
 * file byte sources and the Chromium launcher. Nothing outside this folder imports it.
 */
export * from './models-dir.ts'
export * from './file-source.ts'
export * from './chromium.ts'
export { startTabmeshServer, type TabmeshServer, type TabmeshServerOptions } from './relay/server.ts'
