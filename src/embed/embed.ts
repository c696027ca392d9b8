// The embed room: embed.js for third-party pages (this file), the JS API they call (api.ts), and
// the iframe on the tabmesh origin that does the work (frame.ts) through the tab runtime.
import { connect, frameEngine, frameUrl, openFrame, type ConnectOptions, type TabmeshEngine } from './api.ts'

/**
 * embed.js: `<script src="https://<tabmesh host>/embed.js" data-mode="contribute|chat" data-model="...">`
 * (optional `data-ice-servers='[{"urls":"stun:stun.example.org:3478"}]'`: the widget's STUN/TURN
 * servers, as RTCIceServer JSON, instead of the tabmesh site's)
 * puts the tabmesh widget (an iframe from the tabmesh origin) where the script tag is, and exposes
 * the JS API as window.tabmesh. Built as one classic script (no imports), wrapped so it adds no
 * globals but window.tabmesh.
 */
interface TabmeshGlobal {
  connect(options?: ConnectOptions): Promise<TabmeshEngine>
  /** The engine behind this script tag's widget (resolves once the widget has loaded). */
  widget?: Promise<TabmeshEngine>
}

const script = document.currentScript as HTMLScriptElement | null
const origin = script?.src ? new URL(script.src).origin + '/' : undefined
const api: TabmeshGlobal = {
  connect: (options = {}) => connect({ ...options, relay: options.relay ?? origin }),
}

const mode = script?.dataset.mode
if (script && origin && (mode === 'contribute' || mode === 'chat')) {
  const d = script.dataset
  const model = d.model || 'stories260K'
  const src = frameUrl(origin, {
    mode, model, chat: d.chatMode, backend: d.backend,
    temperature: d.temperature, max_tokens: d.maxTokens, top_p: d.topP, seed: d.seed, ice: d.iceServers,
  })
  api.widget = openFrame(src, (iframe) => {
    iframe.style.width = d.width || (mode === 'chat' ? '380px' : '320px')
    iframe.style.height = d.height || (mode === 'chat' ? '420px' : '48px')
    iframe.dataset.tabmesh = mode
    // where the tag is; a tag in <head> puts the widget at the end of <body>
    if (script.closest('body')) script.after(iframe)
    else if (document.body) document.body.append(iframe)
    else addEventListener('DOMContentLoaded', () => document.body.append(iframe), { once: true })
  }).then((iframe) => frameEngine(iframe, src.origin, model))
  api.widget.catch((err: unknown) => console.error('tabmesh:', err))
}

;(window as unknown as { tabmesh: TabmeshGlobal }).tabmesh = api
